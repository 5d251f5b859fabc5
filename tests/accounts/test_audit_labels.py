"""The audit page names actions and object types in words of the reader's language, not codes."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from accounts import services
from accounts.audit_labels import action_label, object_label
from accounts.models import Role
from tests.accounts.factories import MembershipFactory, OrganizationFactory
from tests.keys.factories import VirtualKeyFactory

BASE_DIR = Path(settings.BASE_DIR)
APPS = ["accounts", "billing", "keys", "control", "relay"]


def recorded_actions() -> set[str]:
    """Every action code the services write (`action="…"` in the sources)."""
    found = set()
    for app in APPS:
        for path in (BASE_DIR / app).rglob("*.py"):
            found |= set(re.findall(r'\baction="([a-z_]+\.[a-z_]+)"', path.read_text(encoding="utf-8")))
    return found


def test_every_recorded_action_and_object_type_has_a_label_in_both_languages():
    actions = recorded_actions()
    assert {"key.rotate", "member.role_change", "budget.create"} <= actions
    problems = []
    for action in sorted(actions):
        with translation.override("en"):
            english = action_label(action)
        with translation.override("zh-hans"):
            chinese = action_label(action)
        if english == action:
            problems.append(f"{action}: no label")
        elif chinese == english or re.search(r"[A-Za-z]{3,}", chinese.replace("API", "")):
            problems.append(f"{action}: not translated ({chinese!r})")
    with translation.override("zh-hans"):
        for model_name in ("organization", "team", "membership", "invitation", "apitoken", "virtualkey", "providercredential",
                           "model", "deployment", "price", "exchangerate", "budget", "alertchannel"):
            if re.search(r"[A-Za-z]{3,}", object_label(model_name).replace("API", "")):
                problems.append(f"object type {model_name}: not translated")
    assert not problems, "\n".join(problems)


def test_an_unknown_action_shows_its_code():
    assert action_label("plugin.frobnicate") == "plugin.frobnicate"
    assert object_label("gizmo") == "gizmo"


@pytest.mark.django_db
def test_audit_page_in_chinese_shows_words_not_codes(client):
    org = OrganizationFactory(name="Audit Org")
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    key = VirtualKeyFactory(organization=org, name="rotated-key")
    services.audit_record(organization=org, actor=owner, action="key.rotate", target=key)
    services.audit_record(organization=org, actor=owner, action="member.role_change", target=owner.memberships.get())
    client.force_login(owner)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    html = client.get(reverse("audit_log")).content.decode()
    assert "虚拟密钥已轮换" in html and "成员角色已更改" in html
    assert ">key.rotate<" not in html and ">virtualkey<" not in html
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    html = client.get(reverse("audit_log")).content.decode()
    assert "Virtual key rotated" in html and "Member role changed" in html
