"""The organization's language (for alerts): taken from its creator, changed in the settings page and the API."""

import pytest
from django.conf import settings
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Organization
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-passphrase-for-tests-7"


@pytest.fixture
def settings_open_signup(settings):
    settings.TOLLGATE_SIGNUP = "open"


def _signup(client, email):
    return client.post(reverse("signup"), {"email": email, "name": "", "password1": PASSWORD, "password2": PASSWORD,
                                           "organization_name": f"Org of {email}"})


def test_a_new_organization_takes_its_creators_language(client, settings_open_signup):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    assert _signup(client, "zh@example.com").status_code == 302
    assert Organization.objects.get(name="Org of zh@example.com").language == "zh-hans"
    other = client.__class__()
    assert _signup(other, "en@example.com").status_code == 302
    assert Organization.objects.get(name="Org of en@example.com").language == "en"


def test_accept_language_of_the_creator_counts_too(client):
    user = UserFactory()
    client.force_login(user)
    client.post(reverse("no_organization"), {"name": "Beijing team"}, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert Organization.objects.get(name="Beijing team").language == "zh-hans"


def test_settings_page_changes_the_language(client, org, owner):
    client.force_login(owner)
    page = client.get(reverse("org_settings")).content.decode()
    assert 'name="language"' in page and "简体中文" in page
    data = {"name": org.name, "time_zone": org.time_zone, "currency": org.currency, "language": "zh-hans"}
    assert client.post(reverse("org_settings"), data).status_code == 302
    org.refresh_from_db()
    assert org.language == "zh-hans"
    response = client.post(reverse("org_settings"), {**data, "language": "fr"})
    assert response.status_code == 400 and "fr" in response.content.decode()
    org.refresh_from_db()
    assert org.language == "zh-hans"


def test_api_reads_and_changes_the_language(org, owner):
    api = APIClient()
    api.force_login(owner)
    assert api.get("/api/org/").json()["language"] == "en"
    assert api.patch("/api/org/", {"language": "zh-hans"}, format="json").json()["language"] == "zh-hans"
    response = api.patch("/api/org/", {"language": "klingon"}, format="json")
    assert response.status_code == 400 and "language" in response.json()["error"]["fields"]
    org.refresh_from_db()
    assert org.language == "zh-hans"
