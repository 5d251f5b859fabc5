"""Internationalisation: the Simplified Chinese catalogue is complete, covers every string in the code,
every page each role can reach renders in Chinese (no catalogue English, no hard-coded English phrase),
money and dates follow the language, and the language switch works.

The .po file is read with a small parser (no polib); `msgfmt` (GNU gettext, which `make messages` needs
anyway) checks that it compiles. The coverage test extracts the msgids from a copy of the sources with
Django's own `makemessages`, so a string added later without a translation fails here, not in review.
"""

import ast
import json
import re
import shutil
import subprocess
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import NoReverseMatch, URLResolver, get_resolver, resolve, reverse
from django.urls.exceptions import Resolver404
from django.utils import formats, timezone, translation

from accounts import services as accounts_services
from accounts.models import Role
from accounts.tenancy import OrgContext
from billing import ledger, services as billing_services
from billing.models import Budget
from keys import services as keys_services
from keys.models import VirtualKey
from tests.accounts.factories import MembershipFactory, UserFactory
from tests.billing.factories import AlertChannelFactory, AlertDeliveryFactory, ExchangeRateFactory, PriceFactory, usage_record

BASE_DIR = Path(settings.BASE_DIR)
LOCALE = "zh_Hans"
LANGUAGE = "zh-hans"
PO_FILE = BASE_DIR / "locale" / LOCALE / "LC_MESSAGES" / "django.po"
# What `makemessages` is run with (README / Makefile): everything but these is scanned for strings.
IGNORED_DIRS = {".venv", "node_modules", "benchmarks", "tests", "locale", "staticfiles", "data", "artifacts"}
SOURCE_SUFFIXES = {".py", ".html", ".txt"}


# --- the catalogue -------------------------------------------------------------------------------------


def parse_po(path: Path) -> list[dict]:
    """Entries of a .po file: {"ctx", "id", "plural", "strs": [...], "flags": set, "obsolete"}; header included."""
    entries, entry, field = [], None, None

    def close():
        nonlocal entry
        if entry is not None and entry["id"] is not None:
            entries.append(entry)
        entry = None

    def current():
        nonlocal entry
        if entry is None:
            entry = {"ctx": None, "id": None, "plural": None, "strs": {}, "flags": set(), "obsolete": False}
        return entry

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            close()
            continue
        if line.startswith("#~"):
            current()["obsolete"] = True
            continue
        if line.startswith("#,"):
            if entry is not None and entry["id"] is not None:
                close()
            current()["flags"].update(flag.strip() for flag in line[2:].split(","))
            continue
        if line.startswith("#"):
            if entry is not None and entry["id"] is not None:
                close()
            continue
        match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*")$', line)
        if match:
            keyword, index, value = match.group(1), match.group(2), ast.literal_eval(match.group(3))
            if keyword in ("msgctxt", "msgid") and entry is not None and entry["id"] is not None:
                close()
            if keyword == "msgctxt":
                current()["ctx"], field = value, ("ctx",)
            elif keyword == "msgid":
                current()["id"], field = value, ("id",)
            elif keyword == "msgid_plural":
                current()["plural"], field = value, ("plural",)
            else:
                slot = int(index) if index is not None else 0
                current()["strs"][slot], field = value, ("strs", slot)
            continue
        if line.startswith('"'):
            value = ast.literal_eval(line)
            if field[0] == "strs":
                entry["strs"][field[1]] += value
            else:
                entry[field[0]] += value
            continue
        raise AssertionError(f"{path}: unexpected line {raw!r}")
    close()
    return entries


def _key(entry) -> tuple:
    return (entry["ctx"], entry["id"], entry["plural"])


def _label(entry) -> str:
    return (f"[{entry['ctx']}] " if entry["ctx"] else "") + repr(entry["id"])


@pytest.fixture(scope="module")
def catalogue() -> list[dict]:
    assert PO_FILE.exists(), f"{PO_FILE} is missing: run makemessages -l {LOCALE} and translate it"
    return [e for e in parse_po(PO_FILE) if e["id"] and not e["obsolete"]]


def _placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"%\([A-Za-z_][A-Za-z0-9_]*\)[sdif]|%%|\{[A-Za-z0-9_]*\}", text))


def _tags(text: str) -> list[str]:
    return sorted(re.findall(r"</?[a-zA-Z][a-zA-Z0-9]*", text))


def test_catalogue_has_no_untranslated_or_fuzzy_entries(catalogue):
    assert len(catalogue) > 100
    header = next(e for e in parse_po(PO_FILE) if e["id"] == "")
    assert "fuzzy" not in header["flags"]
    assert "Plural-Forms: nplurals=1; plural=0;" in header["strs"][0]
    assert "charset=UTF-8" in header["strs"][0]
    fuzzy = [_label(e) for e in catalogue if "fuzzy" in e["flags"]]
    untranslated = [_label(e) for e in catalogue if not e["strs"] or not all(s.strip() for s in e["strs"].values())]
    assert not fuzzy, f"fuzzy entries in {PO_FILE.name}: {fuzzy}"
    assert not untranslated, f"untranslated entries in {PO_FILE.name}: {untranslated}"
    plural_slots = [_label(e) for e in catalogue if e["plural"] is not None and sorted(e["strs"]) != [0]]
    assert not plural_slots, f"plural entries need exactly msgstr[0] (nplurals=1): {plural_slots}"


def test_translations_keep_placeholders_and_markup(catalogue):
    broken = []
    for e in catalogue:
        sources = [e["id"]] + ([e["plural"]] if e["plural"] is not None else [])
        for text in e["strs"].values():
            # A plural msgstr may drop the counter ("member"/"members" -> "成员"), never invent one.
            wanted = _placeholders(sources[-1])
            found = _placeholders(text)
            if e["plural"] is None and found != wanted or e["plural"] is not None and not set(found) <= set(wanted):
                broken.append(f"{_label(e)}: placeholders {wanted} -> {found}")
            if _tags(text) != _tags(e["id"]):
                broken.append(f"{_label(e)}: markup {_tags(e['id'])} -> {_tags(text)}")
    assert not broken, "\n".join(broken)


def test_catalogue_compiles():
    msgfmt = shutil.which("msgfmt")
    assert msgfmt, "GNU gettext's msgfmt is required (apt-get install gettext): `make messages` compiles with it"
    result = subprocess.run(
        [msgfmt, "--check", "--statistics", "-o", "/dev/null", str(PO_FILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    # "N translated messages." and nothing fuzzy or untranslated.
    assert re.fullmatch(r"\d+ translated messages?\.\s*", result.stderr), result.stderr


def test_compiled_catalogue_is_loaded():
    """The .mo next to the .po is current (`make messages` ran) and Django uses it."""
    mo = PO_FILE.with_suffix(".mo")
    assert mo.exists(), f"{mo} is missing: run `make messages` (compilemessages) first"
    assert mo.stat().st_mtime >= PO_FILE.stat().st_mtime, f"{mo} is older than the .po: run `make messages`"
    with translation.override(LANGUAGE):
        assert translation.gettext("Overview") == "概览"
        assert translation.gettext("Virtual key") == "虚拟密钥"
        assert translation.ngettext("%(counter)s deployment", "%(counter)s deployments", 3) % {"counter": 3} == "3 个部署"


def _copy_sources(destination: Path) -> None:
    """The files makemessages would scan, copied (its temporary .py files must not land in the repo)."""
    for top in BASE_DIR.iterdir():
        if top.name.startswith(".") or top.name in IGNORED_DIRS:
            continue
        if top.is_file():
            if top.suffix in SOURCE_SUFFIXES:
                shutil.copy2(top, destination / top.name)
            continue
        for path in top.rglob("*"):
            if path.is_file() and path.suffix in SOURCE_SUFFIXES and "__pycache__" not in path.parts:
                target = destination / path.relative_to(BASE_DIR)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)


def test_catalogue_covers_every_string_in_the_code(catalogue, tmp_path, settings, monkeypatch):
    """Extract the msgids afresh (Django's makemessages on a copy of the sources) and require a translation."""
    assert shutil.which("xgettext"), "GNU gettext's xgettext is required (apt-get install gettext)"
    sources = tmp_path / "src"
    sources.mkdir()
    _copy_sources(sources)
    settings.LOCALE_PATHS = [sources / "locale"]
    monkeypatch.chdir(sources)
    call_command("makemessages", locale=[LOCALE], no_obsolete=True, verbosity=0, ignore_patterns=sorted(IGNORED_DIRS))
    fresh_po = sources / "locale" / LOCALE / "LC_MESSAGES" / "django.po"
    fresh = [e for e in parse_po(fresh_po) if e["id"]]
    assert len(fresh) > 100, "makemessages found almost nothing: is the source copy right?"
    translated = {_key(e) for e in catalogue if all(s.strip() for s in e["strs"].values())}
    missing = sorted(_label(e) for e in fresh if _key(e) not in translated)
    assert not missing, (
        f"{len(missing)} string(s) in the code have no Chinese translation; run "
        f"`python manage.py makemessages -l {LOCALE} --ignore=.venv --ignore=node_modules --ignore=benchmarks "
        f"--ignore=tests --no-obsolete` and translate them in {PO_FILE.relative_to(BASE_DIR)}:\n" + "\n".join(missing)
    )


# --- pages in Chinese ----------------------------------------------------------------------------------

# Paths that are not dashboard pages: the API, Django's admin (its own catalogues), the language switch.
SKIPPED_PREFIXES = ("/api/", "/admin/", "/i18n/", "/static/")
# Pages that are downloads, JSON or actions, not HTML to read.
SKIPPED_URL_NAMES = {"logout", "usage_export", "usage_cost"}
PAGES_PER_URL_NAME = 2  # a list links to many detail pages of one kind: two of each are enough
# The navigation as an owner sees it, in Chinese (base.html).
NAV_ZH = ["概览", "用量", "预算", "密钥", "服务商", "模型", "成本估算", "试验场", "成员", "团队", "设置", "审计日志"]


class VisibleText(HTMLParser):
    """The text a person reads or hears: element text, the attributes that are shown or spoken, and the
    strings of json_script data (chart labels). Code samples (<code>, <pre>) are left out."""

    SHOWN_ATTRIBUTES = frozenset({"title", "placeholder", "aria-label", "alt", "data-confirm", "data-copied", "label"})
    LITERAL_ELEMENTS = frozenset({"code", "pre", "kbd", "samp"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.links: list[str] = []
        self.lang = None
        self._script = None  # None outside <script>/<style>, else "json" or "other"
        self._literal = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.lang = attrs.get("lang")
        if tag in ("script", "style", "template"):
            self._script = "json" if tag == "script" and attrs.get("type") == "application/json" else "other"
        if tag in self.LITERAL_ELEMENTS:
            self._literal += 1
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        for name, value in attrs.items():
            if value and (name in self.SHOWN_ATTRIBUTES or name.startswith("data-text-")):
                self.chunks.append(value)
        if tag == "input" and attrs.get("type") in ("submit", "button", "reset") and attrs.get("value"):
            self.chunks.append(attrs["value"])

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template"):
            self._script = None
        if tag in self.LITERAL_ELEMENTS and self._literal:
            self._literal -= 1

    def handle_data(self, data):
        if self._script == "json":
            self.chunks.extend(_json_strings(json.loads(data)))
        elif self._script is None and not self._literal and data.strip():
            self.chunks.append(" ".join(data.split()))


def _json_strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _json_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _json_strings(v)]
    return []


def visible(html: str) -> VisibleText:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return parser


def _english_fragments(catalogue) -> list[str]:
    """The literal English pieces of every translated msgid (placeholders and markup cut out) longer than
    12 characters: none of them may be read on a page in Chinese."""
    pieces = set()
    for e in catalogue:
        for text in (e["id"], e["plural"]):
            if not text or text in e["strs"].values():
                continue
            for piece in re.split(r"%\([A-Za-z_]+\)[sdif]|%%|<[^>]+>|\{[A-Za-z0-9_]*\}|\n", text):
                piece = piece.strip(" .,:;()“”\"'")
                if len(piece) > 12 and re.search(r"[a-z]{2,} [A-Za-z]", piece):
                    pieces.add(piece)
    return sorted(pieces, key=len, reverse=True)


_WORD = re.compile(r"^[A-Za-z]{2,}$")
_PUNCTUATION = " \t.,:;!?()[]{}\"'“”‘’…·—–/|（）【】「」《》，。：；！？、"


def _english_runs(chunk: str) -> list[str]:
    """Runs of English words in a piece of text: hard-coded strings that never went through gettext.

    Whitespace-separated tokens that are plain words (punctuation around them ignored); a run counts when
    it has 3 or more words, or 2 with a lowercase one ("no internet", "Batch jobs"). Names such as
    "Google Gemini", identifiers (gpt-4o-mini, Asia/Shanghai, user@example.com) and single technical words
    kept in the Chinese text (token, Webhook, URL) do not count.
    """
    runs, run = [], []

    def close():
        if len(run) >= 3 or len(run) == 2 and any(word[0].islower() for word in run):
            runs.append(" ".join(run))
        run.clear()

    for token in chunk.split():
        word = token.strip(_PUNCTUATION)
        if _WORD.match(word) and word == token.strip(" .,:;!?()\"'"):
            run.append(word)
            if token.rstrip(".:;!?)）") != token.rstrip(".:;!?"):  # a closing bracket ends a phrase
                close()
        else:
            close()
    close()
    return runs


def _dashboard_paths() -> list[str]:
    """Every page of the site without URL arguments, found in the resolver, so new pages are covered."""
    paths = []

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace != "admin":
                    walk(pattern.url_patterns)
            elif pattern.name and not pattern.pattern.converters:
                try:
                    path = reverse(pattern.name)
                except NoReverseMatch:  # also declared with arguments, or inside a namespace
                    continue
                if not path.startswith(SKIPPED_PREFIXES) and pattern.name not in SKIPPED_URL_NAMES:
                    paths.append(path)

    walk(get_resolver().url_patterns)
    return sorted(set(paths))


def _crawl(client, start=None) -> dict:
    """GET the argument-free pages, then the same-site pages they link to (at most PAGES_PER_URL_NAME of
    each URL name); returns {path: response} of the HTML pages, 403 pages included (a refusal is a page)."""
    queue = list(start if start is not None else _dashboard_paths())
    seen, per_name, pages = set(), {}, {}
    while queue:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        bare = urlsplit(path).path
        if bare.startswith(SKIPPED_PREFIXES):
            continue
        try:
            name = resolve(bare).url_name
        except Resolver404:
            continue
        if name in SKIPPED_URL_NAMES or per_name.get(name, 0) >= PAGES_PER_URL_NAME:
            continue
        per_name[name] = per_name.get(name, 0) + 1
        response = client.get(path)
        if response.status_code not in (200, 400, 403) or "text/html" not in response.get("Content-Type", ""):
            continue
        pages[path] = response
        for href in visible(response.content.decode()).links:
            parts = urlsplit(href)
            if not parts.scheme and not parts.netloc and parts.path.startswith("/"):
                queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return pages


def _problems(path, response, fragments) -> list[str]:
    """What is not Chinese on one page."""
    page = visible(response.content.decode())
    problems = []
    if page.lang != LANGUAGE:
        problems.append(f'<html lang="{page.lang}">, not {LANGUAGE}')
    chunks = page.chunks
    text = "\n".join(chunks)
    problems += [f"untranslated: {fragment!r}" for fragment in fragments if fragment in text]
    problems += [f"English text: {run!r}" for chunk in chunks for run in _english_runs(chunk)]
    if response.status_code == 200 and 'class="nav-links"' in response.content.decode() and NAV_ZH[0] not in text:
        problems.append(f"navigation without {NAV_ZH[0]!r}")
    return [f"{path} ({response.status_code}): {problem}" for problem in dict.fromkeys(problems)]


@pytest.fixture
def seeded(db, org, owner, settings):
    """An organization with one of everything the dashboard shows, in CNY and Asia/Shanghai. Names are
    Chinese so that the English detector reads only the interface, not the data."""
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["api.openai.com", "hooks.example.com"]  # no DNS in tests
    org.name, org.currency, org.time_zone = "示例科技", "CNY", "Asia/Shanghai"
    org.save()
    actor = OrgContext(organization=org, role=Role.OWNER, user=owner)
    colleague = MembershipFactory(organization=org, role=Role.MEMBER, user=UserFactory(name="李雷")).user
    MembershipFactory(organization=org, role=Role.VIEWER, user=UserFactory(name="韩梅梅"))
    team = accounts_services.team_create(actor=actor, name="平台组")
    accounts_services.membership_set_teams(actor=actor, membership=colleague.memberships.get(), teams=[team])
    accounts_services.invitation_create(actor=actor, email="new.person@example.com", role=Role.VIEWER)
    credential = keys_services.credential_create(actor=actor, name="主账号", provider="openai", api_key="sk-test-abcdef123456")
    keys_services.credential_create(actor=actor, name="试用", provider="mock")
    model = keys_services.model_create(actor=actor, name="chat-default")
    deployment = keys_services.deployment_create(
        actor=actor, model=model, credential=credential, upstream_model="gpt-4o-mini", name="小模型", weight=3,
    )
    keys_services.deployment_create(
        actor=actor, model=model, credential=credential, upstream_model="gpt-4o", name="大模型", weight=1, order=1,
    )
    keys_services.model_create(actor=actor, name="spare-model", fallback_models=["chat-default"])
    key, _ = keys_services.virtual_key_create(actor=actor, name="后端服务", user=owner, team=team, rpm_limit=60)
    own_key, _ = keys_services.virtual_key_create(actor=actor, name="李雷的密钥", user=colleague, tpm_limit=10_000)
    revoked, _ = keys_services.virtual_key_create(actor=actor, name="旧密钥", allowed_models=["chat-default"])
    keys_services.virtual_key_revoke(actor=actor, key=revoked)
    PriceFactory(organization=org, provider="openai", upstream_model="gpt-4o-mini")
    ExchangeRateFactory(organization=org, currency="USD", rate=Decimal("7.2"))
    billing_services.budget_create(actor=actor, scope=Budget.Scope.ORGANIZATION, amount="500", name="公司总预算")
    billing_services.budget_create(
        actor=actor, scope=Budget.Scope.TEAM, team=team, amount="1", hard=False, name="平台组预算",
        downgrade_model="spare-model",
    )
    billing_services.budget_create(
        actor=actor, scope=Budget.Scope.KEY, key=own_key, amount="20", period=Budget.Period.DAY, name="李雷日预算",
    )
    channel = AlertChannelFactory(organization=org, name="值班邮箱")
    AlertChannelFactory(organization=org, name="告警回调", webhook=True)
    AlertDeliveryFactory(organization=org, channel=channel)
    now = timezone.now()
    records = [
        usage_record(organization=org, key=key if n % 3 else own_key, at=now - timedelta(days=n % 20, minutes=n),
                     deployment_id=deployment.pk, model_name="chat-default", status_code=200 if n % 7 else 500,
                     cost_display="0.25", prompt_tokens=1200 + n, completion_tokens=345, cached_tokens=n % 2 * 100)
        for n in range(40)
    ]
    records.append(usage_record(organization=org, key=key, at=now - timedelta(hours=2), cost_display=None, model_name="chat-default"))
    ledger.usage_ingest(records)
    return org


@pytest.fixture(scope="module")
def fragments(catalogue):
    return _english_fragments(catalogue)


def _in_chinese(client, user=None):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = LANGUAGE
    if user is not None:
        client.force_login(user)
    return client


def test_english_detector_finds_hard_coded_text():
    assert _english_runs("Demo (local mock, no internet)") == ["Demo local mock no internet"]
    assert _english_runs("Qiniu AI inference") == ["Qiniu AI inference"]
    assert _english_runs("No keys yet. Create one below.")
    for chinese in ["输入 / 输出 token", "Webhook 带签名（Standard Webhooks，HMAC-SHA256）", "Google Gemini", "chat-default",
                    "Asia/Shanghai", "1 USD = 7.2 CNY", "user0@example.com", "p50 延迟（毫秒）", "Tollgate"]:
        assert _english_runs(chinese) == [], chinese


@pytest.mark.parametrize("role", [Role.OWNER, Role.MEMBER, Role.VIEWER])
def test_every_dashboard_page_is_in_chinese(client, seeded, fragments, role):
    """Each page a role can reach (resolver + links followed) reads in Chinese: no catalogue English, no
    hard-coded English phrase, the Chinese navigation."""
    user = seeded.memberships.filter(role=role).first().user
    pages = _crawl(_in_chinese(client, user))
    names = {resolve(urlsplit(path).path).url_name for path in pages}
    if role == Role.OWNER:
        expected = {"home", "keys", "key_detail", "providers", "credential_edit", "models", "model_edit", "model_report",
                    "deployment_edit", "members", "teams", "org_settings", "audit_log", "budgets", "budget_edit",
                    "channel_edit", "usage", "usage_event", "estimator", "playground"}
        assert expected <= names, f"not reached: {sorted(expected - names)}"
    problems = [problem for path, response in pages.items() for problem in _problems(path, response, fragments)]
    assert not problems, f"{len(problems)} problem(s) on {len(pages)} pages:\n" + "\n".join(problems)


def test_navigation_is_chinese(client, seeded, owner):
    text = "\n".join(visible(_in_chinese(client, owner).get(reverse("home")).content.decode()).chunks)
    missing = [label for label in NAV_ZH if label not in text]
    assert not missing, f"navigation labels not in Chinese: {missing}"
    for english in ["Overview", "Usage", "Budgets", "Providers", "Audit log", "Log out"]:
        assert english not in text


def test_pages_without_login_are_in_chinese(client, seeded, owner, fragments):
    actor = OrgContext(organization=seeded, role=Role.OWNER, user=owner)
    _invitation, token = accounts_services.invitation_create(actor=actor, email="someone.else@example.com")
    paths = [reverse(name) for name in ("login", "signup", "password_reset", "password_reset_done", "password_reset_complete")]
    paths += [reverse("invitation_accept", args=[token]), reverse("invitation_accept", args=["not-a-token"])]
    _in_chinese(client)
    problems = []
    for path in paths:
        response = client.get(path)
        assert response.status_code in (200, 400, 404, 410), (path, response.status_code)
        problems += _problems(path, response, fragments)
    # A refused log-in shows Django's own message, in Chinese.
    response = client.post(reverse("login"), {"username": owner.email, "password": "wrong password"})
    problems += _problems("login (wrong password)", response, fragments)
    assert not problems, "\n".join(problems)


def test_pages_after_actions_are_in_chinese(client, seeded, owner, fragments):
    """Pages only a POST shows: a new key's secret, a webhook's signing secret, forms with errors."""
    _in_chinese(client, owner)
    results = {
        "key created": client.post(reverse("key_create"), {"name": "新密钥"}),
        "webhook created": client.post(
            reverse("channel_create"), {"name": "新回调", "kind": "webhook", "target": "https://hooks.example.com/x"}
        ),
        "budget refused": client.post(reverse("budget_create"), {"scope": "org", "amount": "-1", "period": "month"}),
        "key refused": client.post(reverse("key_create"), {"name": "", "rpm_limit": "-5"}),
        "estimate": client.post(reverse("estimator"), {"text": "你好", "expected_output_tokens": "100", "models": ["chat-default"]}),
        "estimate refused": client.post(reverse("estimator"), {"expected_output_tokens": "x"}),
        "usage refused": client.get(reverse("usage"), {"range": "custom", "since": "2026-02-30"}),
    }
    for what, response in results.items():
        assert response.status_code in (200, 400), (what, response.status_code)
    assert "复制" in results["key created"].content.decode()
    problems = [p for what, response in results.items() for p in _problems(what, response, fragments)]
    assert not problems, "\n".join(problems)


def test_provider_preset_labels_are_translated():
    from keys.models import provider_choices

    with translation.override(LANGUAGE):
        assert dict(provider_choices())["mock"] != "Demo (local mock, no internet)"


# --- the language switch -------------------------------------------------------------------------------


def test_english_is_the_default(client, seeded, owner):
    client.force_login(owner)
    page = visible(client.get(reverse("home")).content.decode())
    assert page.lang == "en"
    assert "Overview" in page.chunks and "概览" not in page.chunks


def test_accept_language_picks_chinese(client, seeded, owner):
    client.force_login(owner)
    page = visible(client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5").content.decode())
    assert page.lang == LANGUAGE
    assert "概览" in page.chunks


def test_language_switch(client, seeded, owner):
    client.force_login(owner)
    assert f'action="{reverse("set_language")}"' in client.get(reverse("keys")).content.decode()
    response = client.post(reverse("set_language"), {"language": LANGUAGE, "next": reverse("keys")})
    assert response.status_code == 302 and response["Location"] == reverse("keys")
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == LANGUAGE
    page = visible(client.get(reverse("keys")).content.decode())
    assert page.lang == LANGUAGE
    assert "密钥" in page.chunks and "新建密钥" in "\n".join(page.chunks)
    # The switch shows the current language selected, and switches back.
    assert re.search(r'<option value="zh-hans" selected>简体中文</option>', client.get(reverse("keys")).content.decode())
    client.post(reverse("set_language"), {"language": "en", "next": reverse("keys")})
    page = visible(client.get(reverse("keys")).content.decode())
    assert page.lang == "en" and "Keys" in page.chunks


def test_language_switch_refuses_an_unknown_language(client, seeded, owner):
    client.force_login(owner)
    client.post(reverse("set_language"), {"language": "xx", "next": reverse("home")})
    assert visible(client.get(reverse("home")).content.decode()).lang == "en"


def test_language_switch_from_a_page_rendered_by_a_post_returns_to_a_page_a_get_can_show(client, seeded, owner):
    """A rotated key's secret page is rendered from a POST at a URL that only accepts POST: switching the
    language there went back to it, a 405. The switch returns to `next` or the Referer only when a GET can
    show it (and it is same-site); otherwise home."""
    client.force_login(owner)
    key = VirtualKey.objects.get(organization=seeded, name="后端服务")
    rotate = reverse("key_rotate", args=[key.pk])
    page = client.post(rotate, {"rotate-grace_seconds": 0})
    assert f'name="next" value="{rotate}"' in page.content.decode()  # the page it was rendered on
    response = client.post(reverse("set_language"), {"language": LANGUAGE, "next": rotate}, HTTP_REFERER="http://testserver" + rotate)
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert client.get(response["Location"]).status_code == 200
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == LANGUAGE
    # A POST-only next falls back to a GET-able same-site Referer, query string kept.
    response = client.post(reverse("set_language"), {"language": "en", "next": rotate},
                           HTTP_REFERER="http://testserver" + reverse("keys") + "?page=1")
    assert response["Location"] == reverse("keys") + "?page=1"
    # Another site, an unknown path, or nothing at all: home.
    for next_url, referer in (("https://evil.example/keys/", "https://evil.example/"), ("/no/such/page/", ""), ("", "")):
        response = client.post(reverse("set_language"), {"language": "en", "next": next_url}, HTTP_REFERER=referer)
        assert response["Location"] == reverse("home"), next_url
    assert client.get(reverse("set_language")).status_code == 405  # the switch changes state: POST only


# --- numbers, dates and money --------------------------------------------------------------------------


def test_money_dates_and_numbers_follow_the_language(client, seeded, owner):
    """Amounts carry the organization's currency (CNY: ¥) in both languages; dates use the locale's format."""
    client.force_login(owner)
    english = "\n".join(visible(client.get(reverse("budgets")).content.decode()).chunks)
    _in_chinese(client)
    chinese = "\n".join(visible(client.get(reverse("budgets")).content.decode()).chunks)
    for text in (english, chinese):
        assert "¥500.00" in text
        assert "$" not in text
    month_start = timezone.localtime(timezone.now(), ZoneInfo("Asia/Shanghai")).replace(day=1)
    assert f"{month_start.year}年{month_start.month}月1日" in chinese
    with translation.override("en"):
        assert formats.date_format(month_start.date(), "SHORT_DATE_FORMAT") in english
