"""Authorization of every dashboard page and REST endpoint, generated from the URL configuration.

The table in tests/hardening/helpers.py (`ROUTES`) names, for each route, the object its `pk` points at
(built in organization B) and, per method, the role-matrix permission it needs. `test_the_table_covers_
every_route` walks `get_resolver()` and fails when a route or a method is missing, so a new endpoint must
be added to the table (and so gets tested) before the suite passes again.

Each route and method is then called by:

- an admin of organization A, signed in and by admin API token: an object route (a `pk` of organization B)
  is *not found* (404; `usage_cost` answers `{"found": false}`), never 403, which would confirm it exists;
  a collection or page is served for organization A only: the answer is A's (status as for an allowed call)
  and holds nothing of organization B (whose every object name carries a marker);
- organization B's viewer and member: allowed exactly when the role holds the permission, else 403; a
  member reaches only their own keys and requests (another member's: 404) and lists only their own;
  and what they are shown follows the role matrix (`World.hidden_from`): no page or endpoint answered to a
  member shows another member's key, request or email, or the budget of a team they are not in, and none
  answered to a member or a viewer shows an alert channel's address;
- organization B's admin: the control, allowed every call, which shows the bodies are valid (so a 404
  above is tenancy and not a bad request);
- a virtual key (`Authorization: Bearer tg-…`, for /v1 only) and anonymous callers: the dashboard sends
  them to the login page, the API answers 401 (403 for the session-only endpoint);

and after every refused call organization B is unchanged: the object's row, B's organization row and
how many members, teams, keys, credentials, models, budgets, channels, audit entries… it holds.
"""

import json

import pytest
from django.urls import reverse

from accounts.models import Membership
from accounts.permissions import has_perm
from billing.models import AlertChannel, Budget
from tests.billing.factories import BudgetFactory
from tests.hardening import helpers
from tests.hardening.helpers import ACTORS, ROUTES, ROUTES_BY_NAME

pytestmark = pytest.mark.django_db

PARAMS = [pytest.param(route, op, id=f"{route.name}-{op.method}") for route in ROUTES for op in route.ops]


@pytest.fixture(autouse=True)
def _egress(settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = helpers.EGRESS_TEST_HOSTS


def test_the_table_covers_every_route():
    """Every route of the URL configuration (but the listed skips) is in the table, with exactly its methods."""
    problems = []
    seen = set()
    for text, name, callback in helpers.routes_to_check():
        if name is None:
            problems.append(f"/{text}: a route without a name cannot be in the table")
            continue
        seen.add(name)
        route = ROUTES_BY_NAME.get(name)
        if route is None:
            problems.append(f"{name} (/{text}): not in tests/hardening/helpers.py ROUTES; add it with its factory and permissions")
            continue
        declared = helpers.declared_methods(text, callback)
        tabled = {op.method for op in route.ops}
        if declared != tabled:
            problems.append(f"{name}: the view answers {sorted(declared)}, the table tests {sorted(tabled)}")
        if ("<" in text) != route.in_path:
            problems.append(f"{name}: /{text} and the table disagree on whether it names an object")
    for name in set(ROUTES_BY_NAME) - seen:
        problems.append(f"{name}: in the table but not in the URL configuration")
    assert not problems, "\n".join(problems)


def _expected(route, op, actor, ownership) -> str:
    if actor.kind in ("anon", "vkey"):
        return "unauthenticated" if route.api else "login"
    if actor.org == "a" and route.foreign_hidden:
        return "hidden"
    if op.perm is not None and not has_perm(actor.role, op.perm):
        return "forbidden"
    if route.own is not None and ownership == "other" and not has_perm(actor.role, route.own):
        return "hidden"
    if op.method == "GET" and route.read_needs is not None and not has_perm(actor.role, route.read_needs):
        return "hidden"
    return "ok"


def _cases(route, actor, w):
    """(ownership, owner of the object) for each call this actor makes."""
    if route.own is not None and actor.name == "member_b":
        return [("own", w.member_b), ("other", w.other_b)]
    return [("other", w.other_b)]


def _check(route, op, actor, expected, response, body: bytes, w) -> list[str]:
    status = response.status_code
    problems = []
    if status >= 500:
        return [f"server error {status}"]
    if expected == "ok":
        if not route.ok(status):
            problems.append(f"expected success, got {status}: {body[:300]!r}")
        elif status == 302 and response["Location"].startswith(reverse("login")):
            problems.append("allowed but sent to the login page")
    elif expected == "forbidden" and status != 403:
        problems.append(f"expected 403, got {status}")
    elif expected == "hidden" and not route.hidden(response):
        problems.append(f"expected not found, got {status}: {body[:200]!r}")
    elif expected == "login" and not (status == 302 and response["Location"].startswith(reverse("login"))):
        problems.append(f"expected a redirect to the login page, got {status} {response.get('Location', '')}")
    elif expected == "unauthenticated" and status not in (401, 403):
        problems.append(f"expected 401/403, got {status}")
    if actor.org == "a" and w.marker.encode() in body:
        problems.append("the answer to organization A shows organization B's data")
    if actor.org == "b" and expected == "ok":
        for what, text in w.hidden_from(actor.role):
            if text.encode() in body or json_escaped(text) in body:
                problems.append(f"the {actor.role} is shown {what} ({text!r})")
    return problems


def json_escaped(text: str) -> bytes:
    return json.dumps(text)[1:-1].encode()


@pytest.mark.parametrize(("route", "op"), PARAMS)
def test_route_as_every_caller(route, op):
    w = helpers.make_world()
    failures = []
    for actor in ACTORS:
        if actor.kind == "token" and not route.api:
            continue  # an API token on a page is simply no session: the virtual-key case shows that already
        for ownership, owner in _cases(route, actor, w):
            obj = route.make(w, owner) if route.make else None
            caller_org = w.org_a if actor.org == "a" else w.org_b
            body = op.body(w, obj, caller_org) if op.body else None
            url = reverse(route.name, kwargs=route.url_kwargs(obj))
            query = route.query(w, obj) if route.query else None
            before_row, before_b = (helpers.row(obj) if obj is not None else None), helpers.fingerprint(w.org_b)

            client = helpers.client_for(w, actor)
            response = helpers.send(client, op.method, url, api=route.api, body=body, query=query)
            content = helpers.content_of(response)

            expected = _expected(route, op, actor, ownership)
            problems = _check(route, op, actor, expected, response, content, w)
            if expected != "ok" or actor.org == "a":
                if obj is not None and helpers.row(obj) != before_row:
                    problems.append("the object changed")
                if helpers.fingerprint(w.org_b) != before_b:
                    problems.append("organization B changed")
            for problem in problems:
                failures.append(f"{actor.name} ({ownership}) {op.method} {url} [{expected}]: {problem}")
    assert not failures, "\n".join(failures)


def test_a_member_reads_only_their_own_membership_and_the_budgets_that_apply_to_them():
    """The detail endpoints follow the lists: another member, another team's budget are not found (404) for a member."""
    w = helpers.make_world()
    member = helpers.client_for(w, helpers.ACTORS_BY_NAME["member_b"])
    viewer = helpers.client_for(w, helpers.ACTORS_BY_NAME["viewer_b"])
    other = Membership.objects.get(organization=w.org_b, user=w.other_b)
    own = Membership.objects.get(organization=w.org_b, user=w.member_b)
    member_detail, budget_detail = "api-member-detail", "api-budget-detail"
    assert member.get(reverse(member_detail, kwargs={"pk": other.pk})).status_code == 404
    assert member.get(reverse(member_detail, kwargs={"pk": own.pk})).json()["user"]["email"] == w.member_b.email
    assert viewer.get(reverse(member_detail, kwargs={"pk": other.pk})).json()["user"]["email"] == w.other_b.email
    assert member.get(reverse(budget_detail, kwargs={"pk": w.team_budget.pk})).status_code == 404
    own_team_budget = BudgetFactory(organization=w.org_b, name="own team", scope=Budget.Scope.TEAM, team=w.team_b)
    assert member.get(reverse(budget_detail, kwargs={"pk": own_team_budget.pk})).status_code == 200
    assert viewer.get(reverse(budget_detail, kwargs={"pk": w.team_budget.pk})).status_code == 200
    channel = AlertChannel.objects.get(organization=w.org_b, name=f"mail-{w.marker}")
    for client in (member, viewer):
        assert client.get(reverse("api-alert-channel-detail", kwargs={"pk": channel.pk})).json()["target"] == ""
    admin = helpers.client_for(w, helpers.ACTORS_BY_NAME["admin_b"])
    assert admin.get(reverse("api-alert-channel-detail", kwargs={"pk": channel.pk})).json()["target"] == w.channel_targets[1]


def test_session_only_endpoint_refuses_tokens_virtual_keys_and_anonymous():
    """api-invitation-accept is outside the table (a capability token); it still needs a signed-in person."""
    w = helpers.make_world()
    url = reverse("api-invitation-accept")
    for actor in ACTORS:
        if actor.kind in ("anon", "vkey", "token"):
            response = helpers.send(helpers.client_for(w, actor), "POST", url, api=True, body={"token": "tgi_whatever"})
            assert response.status_code in (401, 403), (actor.name, response.status_code)
