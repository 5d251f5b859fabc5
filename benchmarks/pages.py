"""Dashboard pages at scale: a usage ledger of millions of rows, then render times of the pages over HTTP.

Run under Tollgate's Django settings (run.py's `pages` command builds the production env and its own
database `tollgate_bench_pages`):

    python benchmarks/pages.py setup                 organizations, users, teams, keys, models (idempotent)
    python benchmarks/pages.py generate --rows 10000000 [--regenerate]
        fills the ledger with server-side SQL (INSERT … SELECT … FROM generate_series) over the last 90 days,
        then the hourly and daily rollups from it with INSERT … SELECT … GROUP BY, as the ledger drain would
        have built them; skipped when the ledger already holds that many rows and is recent
    python benchmarks/pages.py rollups               the rollups built again from the ledger
    python benchmarks/pages.py measure --url http://127.0.0.1:18086 [--requests 50 --warmup 5]
        logs in through the login form and times each page (sequential requests, one connection)
    python benchmarks/pages.py queries [--page overview|usage|usage-page2|usage-errors|…]   in-process: each SQL query a page runs, with EXPLAIN ANALYZE

Each prints one JSON line prefixed with its command name (SETUP, GENERATE, MEASURE); `queries` prints text.
"""

import argparse
import http.client
import json
import os
import re
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal
from html import unescape
from urllib.parse import urlsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts import services as account_services  # noqa: E402
from accounts.models import Membership, Organization, Role, Team, User  # noqa: E402
from accounts.tenancy import OrgContext  # noqa: E402
from keys import services as key_services  # noqa: E402
from keys.models import Deployment, Model, ProviderCredential, VirtualKey  # noqa: E402

ORG_NAME = "Pages Bench"
OTHER_ORG_NAME = "Pages Bench Other"
ADMIN_EMAIL = "admin@pages-bench.invalid"
MEMBER_EMAIL = "member@pages-bench.invalid"
OTHER_EMAIL = "owner@pages-bench-other.invalid"
PASSWORD = "pages-bench-password-1"  # benchmark database only
DAYS = 90
TEAMS = 12
USERS = 40
KEYS = 200
OTHER_KEYS = 20
MEMBER_KEYS = (40, 95, 150)  # positions in the key list (traffic is skewed towards the first keys)
OTHER_SHARE = 10  # the second organization gets rows / OTHER_SHARE
CHUNK = 1_000_000

# name, provider, upstream model, endpoint, weight, input / cached input / output per 1M tokens (USD; None: unpriced)
MODELS = [
    ("gpt-4o-mini", "openai", "gpt-4o-mini", "chat", 30, "0.15", "0.075", "0.60"),
    ("gpt-4o", "openai", "gpt-4o-2024-08-06", "chat", 14, "2.50", "1.25", "10.00"),
    ("claude-sonnet", "anthropic", "claude-sonnet-4-5", "chat", 12, "3.00", "0.30", "15.00"),
    ("claude-haiku", "anthropic", "claude-haiku-4-5", "chat", 8, "1.00", "0.10", "5.00"),
    ("gemini-flash", "gemini", "gemini-2.5-flash", "chat", 8, "0.30", "0.075", "2.50"),
    ("deepseek-chat", "deepseek", "deepseek-chat", "chat", 10, "0.27", "0.07", "1.10"),
    ("qwen-plus", "dashscope", "qwen-plus", "chat", 5, "0.40", "0.16", "1.20"),
    ("glm-4", "zhipu", "glm-4-plus", "chat", 3, "0.70", "0.35", "0.70"),
    ("text-embedding", "openai", "text-embedding-3-small", "embeddings", 8, "0.02", "0.02", "0"),
    ("local-llama", "custom", "llama-3.1-70b", "chat", 2, None, None, None),
]


def emit(tag: str, payload: dict) -> None:
    print(f"{tag} " + json.dumps(payload, default=str), flush=True)


# ---------------------------------------------------------------- setup


def _user(email: str, name: str) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, PASSWORD, name=name)
    return user


def _org(name: str, owner: User) -> Organization:
    org = Organization.objects.filter(name=name).first()
    return org or account_services.organization_create(name=name, owner=owner)


def _world(org: Organization, owner: User, *, keys: int, teams: int, users: int, member: User | None = None) -> dict:
    """Teams, members, keys and models of one organization, made once through the services."""
    ctx = OrgContext(organization=org, role=Role.OWNER, user=owner)
    team_list = list(Team.objects.filter(organization=org).order_by("id"))
    for n in range(len(team_list), teams):
        team_list.append(account_services.team_create(actor=ctx, name=f"Team {n + 1:02d}"))
    people = [owner]
    for n in range(1, users):
        user = _user(f"user{n:03d}@{org.slug}.invalid", f"User {n}")
        Membership.objects.get_or_create(organization=org, user=user, defaults={"role": Role.MEMBER})
        people.append(user)
    if member is not None:
        Membership.objects.get_or_create(organization=org, user=member, defaults={"role": Role.MEMBER})
    key_list = list(VirtualKey.objects.filter(organization=org).order_by("id"))
    for n in range(len(key_list), keys):
        owner_of = member if member is not None and n in MEMBER_KEYS else people[n % len(people)]
        team = team_list[n % len(team_list)] if n % 7 else None  # some keys belong to no team
        key, _secret = key_services.virtual_key_create(actor=ctx, name=f"key {n + 1:03d}", user=owner_of, team=team)
        key_list.append(key)
    credential = ProviderCredential.objects.filter(organization=org, name="pages-bench").first() or key_services.credential_create(
        actor=ctx, name="pages-bench", provider="custom", base_url="http://127.0.0.1:9/v1", api_key="bench",
    )
    deployments = {}
    for name, _provider, upstream, *_rest in MODELS:
        model = Model.objects.filter(organization=org, name=name).first() or key_services.model_create(actor=ctx, name=name)
        existing = list(Deployment.objects.filter(model=model).order_by("id"))
        while len(existing) < 2:
            existing.append(key_services.deployment_create(actor=ctx, model=model, credential=credential, upstream_model=upstream,
                                                           name=f"{name} #{len(existing) + 1}"))
        deployments[name] = [d.pk for d in existing[:2]]
    return {
        "organization_id": org.pk, "key_ids": [k.pk for k in key_list], "team_ids": [k.team_id for k in key_list],
        "user_ids": [k.user_id for k in key_list], "deployments": deployments,
    }


def _budgets(org: Organization, admin: User, member: User) -> None:
    """A handful of budgets of every scope and period, as an organization has them (the overview shows each one's spend)."""
    from billing import services as billing_services
    from billing.models import Budget

    if Budget.objects.filter(organization=org).exists():
        return
    ctx = OrgContext(organization=org, role=Role.OWNER, user=admin)
    teams = list(Team.objects.filter(organization=org).order_by("id")[:3])
    keys = list(VirtualKey.objects.filter(organization=org).order_by("id")[:3])
    member_key = VirtualKey.objects.filter(organization=org, user=member).order_by("id").first()
    specs = [("org", "month", 50000, {}), ("org", "day", 2000, {}), ("user", "week", 500, {"user": member}),
             ("key", "month", 300, {"key": member_key})]
    specs += [("team", "month", 5000, {"team": team}) for team in teams] + [("key", "day", 100, {"key": key}) for key in keys]
    for n, (scope, period, amount, target) in enumerate(specs):
        billing_services.budget_create(actor=ctx, scope=scope, period=period, amount=Decimal(amount), hard=False,
                                       name=f"{scope} {period} {n + 1}", thresholds=[50, 80, 100], **target)


def setup() -> dict:
    admin = _user(ADMIN_EMAIL, "Pages admin")
    member = _user(MEMBER_EMAIL, "Pages member")
    org = _org(ORG_NAME, admin)
    other_owner = _user(OTHER_EMAIL, "Other owner")
    other = _org(OTHER_ORG_NAME, other_owner)
    main = _world(org, admin, keys=KEYS, teams=TEAMS, users=USERS, member=member)
    second = _world(other, other_owner, keys=OTHER_KEYS, teams=3, users=5)
    member_keys = list(VirtualKey.objects.filter(organization=org, user=member).values_list("pk", flat=True))
    _budgets(org, admin, member)
    return {"main": main, "other": second, "member_key_ids": member_keys, "admin": ADMIN_EMAIL, "member": MEMBER_EMAIL}


# ---------------------------------------------------------------- generate

EVENT_SQL = """
INSERT INTO billing_usageevent (
    request_id, organization_id, team_id, key_id, user_id, model_name, deployment_id, provider, upstream_model, endpoint,
    stream, status_code, error_type, prompt_tokens, cached_tokens, completion_tokens, usage_source, attempts, attempt_trail,
    latency_ms, ttft_ms, cost, currency, exchange_rate, cost_display, price_id, downgraded_from, created_at,
    usage_flags, cache_write_tokens, credit_drawn, batch_id, search_units, cache_hit, sandbox)
SELECT
    md5(%(org)s::text || '-' || g), %(org)s, (%(team_ids)s::bigint[])[k], (%(key_ids)s::bigint[])[k], (%(user_ids)s::bigint[])[k],
    (%(names)s::text[])[m], CASE WHEN status = 429 THEN NULL ELSE dep END, (%(providers)s::text[])[m], (%(upstreams)s::text[])[m],
    endpoint, stream, status,
    CASE status WHEN 200 THEN '' WHEN 429 THEN 'rate_limit_exceeded' WHEN 400 THEN 'invalid_request_error'
                WHEN 504 THEN 'upstream_timeout' ELSE 'upstream_error' END,
    prompt, cached, completion, CASE WHEN stream AND r_src < 0.1 THEN 'estimated' ELSE 'provider' END,
    CASE WHEN r_retry > 0.98 THEN 2 ELSE 1 END,
    CASE WHEN r_retry > 0.98 THEN jsonb_build_array(
        jsonb_build_object('deployment', dep2, 'status', 502, 'error', 'upstream_error', 'ms', 300),
        jsonb_build_object('deployment', dep, 'status', status, 'error', '', 'ms', latency)) ELSE '[]'::jsonb END,
    latency, CASE WHEN stream AND status = 200 THEN 80 + (r_lat * 900)::int END,
    cost, CASE WHEN cost IS NULL THEN '' ELSE 'USD' END, CASE WHEN cost IS NULL THEN NULL ELSE 1 END, cost, NULL, '',
    created_at, '', 0, false, '', 0, false, false
FROM (
    SELECT *,
        round(((prompt - cached) * (%(input)s::numeric[])[m] + cached * (%(cached_input)s::numeric[])[m]
               + completion * (%(output)s::numeric[])[m]) / 1000000, 10) AS cost
    FROM (
        SELECT g, k, m, stream, status, r_src, r_retry, r_lat, created_at, endpoint,
            CASE WHEN r_dep < 0.7 THEN (%(dep_a)s::bigint[])[m] ELSE (%(dep_b)s::bigint[])[m] END AS dep,
            CASE WHEN r_dep < 0.7 THEN (%(dep_b)s::bigint[])[m] ELSE (%(dep_a)s::bigint[])[m] END AS dep2,
            CASE WHEN status <> 200 THEN 0 ELSE prompt END AS prompt,
            CASE WHEN status <> 200 OR r_cache > 0.3 THEN 0 ELSE (prompt * r_cache * 2.5)::int END AS cached,
            CASE WHEN status <> 200 OR endpoint = 'embeddings' THEN 0 ELSE 4 + (power(r_out, 2) * 1500)::int END AS completion,
            CASE WHEN status = 429 THEN 1 + (r_lat * 5)::int
                 ELSE 150 + (power(r_lat, 2) * 9000)::int END AS latency
        FROM (
            SELECT g, k, m, r_src, r_retry, r_lat, r_dep, r_cache, r_out, (%(endpoints)s::text[])[m] AS endpoint,
                (%(endpoints)s::text[])[m] = 'chat' AND r_stream < 0.35 AS stream,
                CASE WHEN r_status < 0.955 THEN 200 WHEN r_status < 0.975 THEN 429 WHEN r_status < 0.984 THEN 400
                     WHEN r_status < 0.992 THEN 500 WHEN r_status < 0.997 THEN 502 ELSE 504 END AS status,
                20 + (power(r_in, 3) * 12000)::int AS prompt,
                %(start)s::timestamptz + (g - r_time) * %(step)s::interval AS created_at
            FROM (
                SELECT g, least(%(keys)s, 1 + floor(power(random(), 2.5) * %(keys)s)::int) AS k,
                    width_bucket(random(), %(thresholds)s::float8[]) AS m,
                    random() AS r_src, random() AS r_retry, random() AS r_lat, random() AS r_dep, random() AS r_cache,
                    random() AS r_out, random() AS r_stream, random() AS r_status, random() AS r_in, random() AS r_time
                FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
            ) AS draws
        ) AS shaped
    ) AS tokens
) AS priced
"""

_ROLLUP_COLUMNS = """organization_id, grain, bucket, team_id, key_id, user_id, model_name, deployment_id, endpoint, requests, errors,
    prompt_tokens, cached_tokens, completion_tokens, cost, unpriced, latency_ms_sum"""
# No cache hits, sandbox runs or downgrades in the generated ledger: their rollup sums are zero.
_SAVINGS_COLUMNS = "cache_hits, cache_saved, sandbox_requests, sandbox_saved, downgrades, downgrade_saved"
_NO_SAVINGS = "0, 0, 0, 0, 0, 0"

ROLLUP_HOUR_SQL = f"""
CREATE UNLOGGED TABLE pages_bench_hours AS
SELECT organization_id, 'hour'::varchar(4) AS grain, date_trunc('hour', created_at, 'UTC') AS bucket, coalesce(team_id, 0) AS team_id,
    coalesce(key_id, 0) AS key_id, coalesce(user_id, 0) AS user_id, model_name, coalesce(deployment_id, 0) AS deployment_id, endpoint,
    count(*) AS requests, count(*) FILTER (WHERE status_code >= 400) AS errors, sum(prompt_tokens) AS prompt_tokens,
    sum(cached_tokens) AS cached_tokens, sum(completion_tokens) AS completion_tokens, coalesce(sum(cost_display), 0) AS cost,
    count(*) FILTER (WHERE cost_display IS NULL AND status_code < 400) AS unpriced, sum(latency_ms) AS latency_ms_sum
FROM billing_usageevent
GROUP BY 1, 3, 4, 5, 6, 7, 8, 9
"""

# The daily rows are the sums of the hourly ones (UTC days), as billing.rollups.rollup_add builds both from the same events.
# Both are written in time order, a day's daily rows placed between its hours' rows, since the drain writes both
# grains together batch by batch: a month of daily rows is read from ~3,700 heap pages rather than ~2,700 when
# stored apart (measured; how far apart they lie in a long-running database depends on its updates and vacuums).
ROLLUP_SQL = f"""
INSERT INTO billing_usagerollup ({_ROLLUP_COLUMNS}, {_SAVINGS_COLUMNS})
SELECT {_ROLLUP_COLUMNS}, {_NO_SAVINGS} FROM (
    SELECT *, bucket AS position FROM pages_bench_hours
    UNION ALL
    SELECT organization_id, 'day', date_trunc('day', bucket, 'UTC'), team_id, key_id, user_id, model_name, deployment_id, endpoint,
        sum(requests), sum(errors), sum(prompt_tokens), sum(cached_tokens), sum(completion_tokens), sum(cost), sum(unpriced),
        sum(latency_ms_sum), date_trunc('day', bucket, 'UTC') + random() * interval '24 hours'
    FROM pages_bench_hours GROUP BY 1, 3, 4, 5, 6, 7, 8, 9
) AS buckets
ORDER BY position
"""


# The coarse daily grains (billing.rollups): per model, and per key with its team and user, summed from the daily rows.
_SUMS = "sum(requests), sum(errors), sum(prompt_tokens), sum(cached_tokens), sum(completion_tokens), sum(cost), sum(unpriced), sum(latency_ms_sum)"
COARSE_SQL = [
    f"""INSERT INTO billing_usagerollup ({_ROLLUP_COLUMNS}, {_SAVINGS_COLUMNS})
        SELECT organization_id, 'dm', bucket, 0, 0, 0, model_name, 0, endpoint, {_SUMS}, {_NO_SAVINGS}
        FROM billing_usagerollup WHERE grain = 'day' GROUP BY organization_id, bucket, model_name, endpoint""",
    f"""INSERT INTO billing_usagerollup ({_ROLLUP_COLUMNS}, {_SAVINGS_COLUMNS})
        SELECT organization_id, 'dk', bucket, team_id, key_id, user_id, '', 0, '', {_SUMS}, {_NO_SAVINGS}
        FROM billing_usagerollup WHERE grain = 'day' GROUP BY organization_id, bucket, team_id, key_id, user_id""",
]


def _build_rollups() -> None:
    _sql("DROP TABLE IF EXISTS pages_bench_hours")
    _sql(ROLLUP_HOUR_SQL)
    _sql(ROLLUP_SQL)
    _sql("DROP TABLE pages_bench_hours")
    for statement in COARSE_SQL:
        _sql(statement)


def _model_params() -> dict:
    weights = [m[4] for m in MODELS]
    total, cumulative, thresholds = sum(weights), 0, []
    for weight in weights[:-1]:
        cumulative += weight
        thresholds.append(cumulative / total)
    price = lambda column: [Decimal(m[column]) if m[column] is not None else None for m in MODELS]  # noqa: E731
    return {
        "names": [m[0] for m in MODELS], "providers": [m[1] for m in MODELS], "upstreams": [m[2] for m in MODELS],
        "endpoints": [m[3] for m in MODELS], "thresholds": [0.0, *thresholds], "input": price(5), "cached_input": price(6),
        "output": price(7),
    }


SESSION = ("SET statement_timeout = 0", "SET synchronous_commit = off", "SET maintenance_work_mem = '1GB'", "SET work_mem = '256MB'")


def _sql(statement: str, params=None, *, fetch: bool = False, attempts: int = 6):
    """One statement in its own transaction, with this session's settings (no 30 s statement timeout); retried on a
    fresh connection when the database went away meanwhile (other test runs restart PostgreSQL on this machine)."""
    from django.db import OperationalError, InterfaceError

    for attempt in range(attempts):
        try:
            with connection.cursor() as cursor:
                for setting in SESSION:
                    cursor.execute(setting)
                cursor.execute(statement, params)
                return cursor.fetchall() if fetch else None
        except (OperationalError, InterfaceError) as exc:
            if attempt == attempts - 1:
                raise
            print(f"  database error ({str(exc).strip()[:80]}); retrying in 10 s", file=sys.stderr, flush=True)
            connection.close()
            time.sleep(10)


def _secondary_indexes(table: str) -> list[tuple[str, str]]:
    """(name, definition) of the table's indexes that back no constraint: dropped for the bulk load, built again after."""
    return _sql(
        """SELECT i.indexname, replace(i.indexdef, 'CREATE INDEX ', 'CREATE INDEX IF NOT EXISTS ') FROM pg_indexes i
           WHERE i.tablename = %s AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
        [table], fetch=True,
    )


def _fill(world: dict, rows: int, *, start, step: timedelta) -> None:
    deployments = world["deployments"]
    params = {
        **_model_params(), "org": world["organization_id"], "key_ids": world["key_ids"], "team_ids": world["team_ids"],
        "user_ids": world["user_ids"], "keys": len(world["key_ids"]), "start": start, "step": step,
        "dep_a": [deployments[m[0]][0] for m in MODELS], "dep_b": [deployments[m[0]][1] for m in MODELS],
    }
    for lo in range(1, rows + 1, CHUNK):
        hi = min(rows, lo + CHUNK - 1)
        began = time.monotonic()
        _sql(EVENT_SQL, {**params, "lo": lo, "hi": hi})
        print(f"  org {world['organization_id']}: rows {lo:,}–{hi:,} in {time.monotonic() - began:.1f} s", file=sys.stderr, flush=True)


def _restore_indexes() -> None:
    """Build again the indexes a generation dropped, should it have been cut off before building them."""
    _sql("CREATE TABLE IF NOT EXISTS pages_bench_state (name text PRIMARY KEY, value text NOT NULL)")
    for name, definition in _sql("SELECT name, value FROM pages_bench_state WHERE name LIKE 'index:%%'", fetch=True):
        _sql(definition)
        _sql("DELETE FROM pages_bench_state WHERE name = %s", [name])


def _drop_indexes(indexes: list[tuple[str, str]]) -> None:
    for name, definition in indexes:
        _sql("INSERT INTO pages_bench_state VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
             [f"index:{name}", definition])
        _sql(f'DROP INDEX IF EXISTS "{name}"')


def rebuild_rollups() -> dict:
    """The rollups built again from the ledger as it is (after a change to how they are laid out)."""
    began = time.monotonic()
    _restore_indexes()
    _sql("TRUNCATE billing_usagerollup")
    _drop_indexes(_secondary_indexes("billing_usagerollup"))
    _build_rollups()
    _restore_indexes()
    _sql("VACUUM (ANALYZE) billing_usagerollup")
    return {"rollups_s": round(time.monotonic() - began, 1)}


def generate(world: dict, *, rows: int, regenerate: bool) -> dict:
    org_id = world["main"]["organization_id"]
    other_rows = rows // OTHER_SHARE
    _restore_indexes()
    [(have, total, newest)] = _sql(
        "SELECT count(*) FILTER (WHERE organization_id = %s), count(*), max(created_at) FROM billing_usageevent", [org_id], fetch=True,
    )
    done = _sql("SELECT value FROM pages_bench_state WHERE name = 'generated'", fetch=True)
    # Stale data would leave the recent days (the ones the pages show) empty: generated again after two days.
    fresh = newest is not None and timezone.now() - newest < timedelta(days=2)
    if not regenerate and done == [(str(rows),)] and have == rows and total == rows + other_rows and fresh:
        return {"generated": False, "rows": have, "other_rows": total - have, "newest": newest}
    began = time.monotonic()
    now = timezone.now()
    start = now - timedelta(days=DAYS)
    _sql("DELETE FROM pages_bench_state WHERE name = 'generated'")
    _sql("TRUNCATE billing_usageevent, billing_usagerollup")  # this database is the benchmark's alone
    # Loading without the secondary indexes and building them afterwards is several times faster.
    dropped = _secondary_indexes("billing_usageevent") + _secondary_indexes("billing_usagerollup")
    _drop_indexes(dropped)
    span = now - start
    # created_at = start + (g - random()) * step, for g in 1..rows: in time order, as a ledger fills up
    _fill(world["main"], rows, start=start, step=span / rows)
    _fill(world["other"], other_rows, start=start, step=span / other_rows)
    events_s = time.monotonic() - began
    mark = time.monotonic()
    _build_rollups()
    rollups_s = time.monotonic() - mark
    mark = time.monotonic()
    _restore_indexes()
    indexes_s = time.monotonic() - mark
    mark = time.monotonic()
    _sql("VACUUM (ANALYZE) billing_usageevent")
    _sql("VACUUM (ANALYZE) billing_usagerollup")
    [(hours, days)] = _sql("SELECT count(*) FILTER (WHERE grain = 'hour'), count(*) FILTER (WHERE grain = 'day') FROM billing_usagerollup", fetch=True)
    [(events_bytes, rollup_bytes)] = _sql("SELECT pg_total_relation_size('billing_usageevent'), pg_total_relation_size('billing_usagerollup')", fetch=True)
    vacuum_s = time.monotonic() - mark
    _sql("INSERT INTO pages_bench_state VALUES ('generated', %s) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value", [str(rows)])
    return {
        "generated": True, "rows": rows, "other_rows": other_rows, "hour_rollups": hours, "day_rollups": days,
        "events_s": round(events_s, 1), "rollups_s": round(rollups_s, 1), "indexes_s": round(indexes_s, 1),
        "vacuum_s": round(vacuum_s, 1), "total_s": round(time.monotonic() - began, 1),
        "events_mb": events_bytes // 2**20, "rollups_mb": rollup_bytes // 2**20, "newest": now,
    }


# ---------------------------------------------------------------- measure


class Browser:
    """One keep-alive connection with a cookie jar of its own: the server's cookies are Secure (DEBUG off) and
    http.cookiejar would not send them back over plain http on loopback."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
        headers = dict(headers or {})
        headers["Host"] = f"{self.host}:{self.port}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt:
                    raise
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                cookie = value.split(";", 1)[0]
                key, _, val = cookie.partition("=")
                self.cookies[key.strip()] = val.strip()
        return response.status, dict((k.lower(), v) for k, v in response.getheaders()), data

    def login(self, email: str) -> None:
        status, _, body = self.request("GET", "/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
        if status != 200 or token is None:
            raise RuntimeError(f"login page: HTTP {status}")
        from urllib.parse import urlencode

        form = urlencode({"csrfmiddlewaretoken": token.group(1).decode(), "username": email, "password": PASSWORD})
        origin = f"http://{self.host}:{self.port}"
        status, headers, _ = self.request("POST", "/login/", form, {
            "Content-Type": "application/x-www-form-urlencoded", "Origin": origin, "Referer": origin + "/login/",
        })
        if status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"login as {email} failed: HTTP {status}")


def _next_link(body: bytes) -> str | None:
    """The request log's "Next" link on a usage page."""
    nav = re.search(rb'<nav class="pagination"[^>]*>(.*?)</nav>', body, re.S)
    links = re.findall(rb'href="([^"]+)"', nav.group(1)) if nav else []
    return unescape(links[-1].decode()) if links and b"Next" in nav.group(1).split(links[-1])[-1][:200] else None


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


def _usage_path(query: str = "") -> str:
    return "/usage/" + (f"?{query}" if query else "")


def measure(url: str, *, requests: int, warmup: int, pages: list[str] | None) -> dict:
    admin, member = Browser(url), Browser(url)
    admin.login(ADMIN_EMAIL)
    member.login(MEMBER_EMAIL)
    # Deeper log pages are reached as a user would: by following "Next" links from the first page.
    deep = {}
    path = _usage_path()
    for number in range(2, 21):
        status, _, body = admin.request("GET", path)
        link = _next_link(body) if status == 200 else None
        if link is None:
            raise RuntimeError(f"no Next link on log page {number - 1} ({path}: HTTP {status})")
        path = "/usage/" + link if link.startswith("?") else link
        if number in (2, 20):
            deep[number] = path
    # The key with the least traffic (traffic is skewed towards the first keys): a filter matching few rows.
    rare_key = VirtualKey.objects.filter(organization__name=ORG_NAME).order_by("-id").values_list("pk", flat=True).first()
    targets = [
        ("overview (admin)", admin, "/"),
        ("usage, default 7 days (admin)", admin, _usage_path()),
        ("usage, log page 2 (admin)", admin, deep[2]),
        ("usage, log page 20 (admin)", admin, deep[20]),
        ("usage, 30 days, model=gpt-4o (admin)", admin, _usage_path("range=30d&model=gpt-4o")),
        ("usage, 90 days, status=errors (admin)", admin, _usage_path("range=90d&status=errors")),
        ("usage, 30 days, least used key, 5xx (admin)", admin, _usage_path(f"range=30d&key={rare_key}&status=5xx")),
        ("overview (member, own keys)", member, "/"),
        ("usage, default 7 days (member, own keys)", member, _usage_path()),
    ]
    results = []
    for label, browser, path in targets:
        if pages and not any(p in label for p in pages):
            continue
        for _ in range(warmup):
            browser.request("GET", path)
        times, statuses, size = [], set(), 0
        for _ in range(requests):
            began = time.perf_counter()
            status, _, body = browser.request("GET", path)
            times.append((time.perf_counter() - began) * 1000)
            statuses.add(status)
            size = len(body)
        results.append({
            "page": label, "path": path, "requests": requests, "statuses": sorted(statuses), "bytes": size,
            "p50_ms": round(statistics.median(times), 1), "p95_ms": round(_percentile(times, 0.95), 1),
            "max_ms": round(max(times), 1), "mean_ms": round(statistics.fmean(times), 1),
        })
        print(f"  {label}: p50 {results[-1]['p50_ms']} ms, p95 {results[-1]['p95_ms']} ms, HTTP {sorted(statuses)}", file=sys.stderr, flush=True)
    return {"pages": results, "client": "http.client, one keep-alive connection per user, sequential requests"}


# ---------------------------------------------------------------- queries (a development aid)


def queries(page: str, analyze: bool) -> None:
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    admin = User.objects.get(email=ADMIN_EMAIL)
    member = User.objects.get(email=MEMBER_EMAIL)
    paths = {
        "overview": (admin, "/"), "usage": (admin, "/usage/"), "usage-30d-model": (admin, "/usage/?range=30d&model=gpt-4o"),
        "usage-errors": (admin, "/usage/?range=90d&status=errors"), "usage-page20": (admin, "/usage/?page=20"),
        "member-overview": (member, "/"), "member-usage": (member, "/usage/"),
    }
    client = Client(HTTP_HOST="127.0.0.1")
    if page == "usage-page2":  # reached as the measurement reaches it: page 1's "Next" link
        client.force_login(admin)
        link = _next_link(client.get("/usage/").content)
        paths[page] = (admin, "/usage/" + link if link.startswith("?") else link)
    user, path = paths[page]
    client.force_login(user)
    client.get(path)  # warm
    with CaptureQueriesContext(connection) as captured:
        began = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - began) * 1000
    print(f"{page} {path}: HTTP {response.status_code}, {elapsed:.1f} ms, {len(captured.captured_queries)} queries")
    for query in captured.captured_queries:
        sql = query["sql"]
        print(f"\n-- {query['time']} s\n{sql[:1500]}")
        if analyze and sql.lstrip().upper().startswith("SELECT"):
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                print("\n".join("   " + row[0] for row in cursor.fetchall()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("setup", "generate", "rollups", "measure", "queries"))
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--url", default="http://127.0.0.1:18086")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--pages", help="comma-separated substrings of the page labels to measure")
    parser.add_argument("--page", default="overview")
    parser.add_argument("--no-analyze", action="store_true")
    args = parser.parse_args()
    if args.command == "setup":
        emit("SETUP", setup())
    elif args.command == "generate":
        emit("GENERATE", generate(setup(), rows=args.rows, regenerate=args.regenerate))
    elif args.command == "rollups":
        emit("ROLLUPS", rebuild_rollups())
    elif args.command == "measure":
        emit("MEASURE", measure(args.url, requests=args.requests, warmup=args.warmup,
                                pages=[p for p in (args.pages or "").split(",") if p]))
    else:
        queries(args.page, not args.no_analyze)


if __name__ == "__main__":
    main()
