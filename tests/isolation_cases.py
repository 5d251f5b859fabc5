"""Cross-organization isolation cases for the REST API, one entry per kind of org-owned object.

`tests/accounts/test_isolation.py` runs every request of every case as an admin of organization A
(by session and by API token) against an object of organization B, and expects 404 (never 403,
which would confirm the object exists), the object unchanged and no audit entry in B.

To cover a new kind of object, append a `Case` to `CASES` (or `CASES += [...]` from your own module
imported here):

    Case(
        name="virtual_keys",
        make=lambda org: VirtualKeyFactory(organization=org),   # creates the object inside `org`
        requests=[
            ("GET", lambda key: f"/api/keys/{key.pk}/"),
            ("PATCH", lambda key: f"/api/keys/{key.pk}/", {"name": "stolen"}),  # optional JSON body
            ("DELETE", lambda key: f"/api/keys/{key.pk}/"),
            ("POST", lambda key: f"/api/keys/{key.pk}/rotate/", {}),
        ],
    )

- `make(org)` must return a saved model instance owned (directly or through a parent) by `org`;
  "unchanged" compares that row's column values before and after, so return the row the requests
  would modify.
- A request is `(method, url_builder)` or `(method, url_builder, body)`; give a body that would be
  valid for an object of your own organization, so that a 400 cannot hide a missing tenancy check.
- Ids in a request body (e.g. a team id inside a member update) are a different leak: test those next
  to the endpoint, they are not URL lookups.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any, NamedTuple

from django.db.models import Model
from django.utils import timezone

from accounts import services
from accounts.crypto import keyed_hash, new_secret
from accounts.models import Invitation, Organization, Role
from tests.accounts.factories import MembershipFactory, TeamFactory

Request = tuple[str, Callable[[Any], str]] | tuple[str, Callable[[Any], str], dict]


class Case(NamedTuple):
    name: str
    make: Callable[[Organization], Model]
    requests: list[Request]


def _invitation(org: Organization) -> Invitation:
    # Built directly rather than through invitation_create, which also sends an email.
    return Invitation.objects.create(
        organization=org,
        email="invitee@example.com",
        role=Role.MEMBER,
        token_hash=keyed_hash(new_secret(services.INVITATION_TOKEN_PREFIX)),
        expires_at=timezone.now() + timedelta(days=7),
    )


def _api_token(org: Organization):
    token, _secret = services.api_token_create(organization=org, name="theirs")
    return token


CASES: list[Case] = [
    Case(
        name="members",
        make=lambda org: MembershipFactory(organization=org, role=Role.MEMBER),
        requests=[
            ("GET", lambda m: f"/api/members/{m.pk}/"),
            ("PATCH", lambda m: f"/api/members/{m.pk}/", {"role": Role.VIEWER}),
            ("PATCH", lambda m: f"/api/members/{m.pk}/", {"teams": []}),
            ("DELETE", lambda m: f"/api/members/{m.pk}/"),
        ],
    ),
    Case(
        name="teams",
        make=lambda org: TeamFactory(organization=org),
        requests=[
            ("GET", lambda t: f"/api/teams/{t.pk}/"),
            ("PATCH", lambda t: f"/api/teams/{t.pk}/", {"name": "Renamed by A"}),
            ("DELETE", lambda t: f"/api/teams/{t.pk}/"),
        ],
    ),
    Case(
        name="invitations",
        make=_invitation,
        requests=[
            ("GET", lambda i: f"/api/invitations/{i.pk}/"),
            ("DELETE", lambda i: f"/api/invitations/{i.pk}/"),
        ],
    ),
    Case(
        name="api_tokens",
        make=_api_token,
        requests=[
            ("GET", lambda t: f"/api/tokens/{t.pk}/"),
            ("DELETE", lambda t: f"/api/tokens/{t.pk}/"),
        ],
    ),
]


# Keys: virtual keys, provider credentials, models and deployments. Ids inside request bodies (a
# credential of another organization, another organization's model in a deployment POST) are tested in
# tests/keys/test_api.py.

from tests.keys.factories import DeploymentFactory, ModelFactory, ProviderCredentialFactory, VirtualKeyFactory  # noqa: E402


def _deployment_with_a_sibling(org):
    """A deployment that may be deleted: its model keeps another active one."""
    deployment = DeploymentFactory(organization=org)
    DeploymentFactory(organization=org, model=deployment.model, credential=deployment.credential)
    return deployment

CASES += [
    Case(
        name="virtual_keys",
        make=lambda org: VirtualKeyFactory(organization=org),
        requests=[
            ("GET", lambda key: f"/api/keys/{key.pk}/"),
            ("PATCH", lambda key: f"/api/keys/{key.pk}/", {"name": "Renamed by A", "rpm_limit": 1}),
            ("DELETE", lambda key: f"/api/keys/{key.pk}/"),
            ("POST", lambda key: f"/api/keys/{key.pk}/rotate/", {"grace_seconds": 60}),
        ],
    ),
    Case(
        name="provider_credentials",
        make=lambda org: ProviderCredentialFactory(organization=org),
        requests=[
            ("GET", lambda c: f"/api/credentials/{c.pk}/"),
            ("PATCH", lambda c: f"/api/credentials/{c.pk}/", {"name": "Renamed by A", "read_timeout": 5}),
            ("DELETE", lambda c: f"/api/credentials/{c.pk}/"),
        ],
    ),
    Case(
        name="models",
        make=lambda org: ModelFactory(organization=org),
        requests=[
            ("GET", lambda m: f"/api/models/{m.pk}/"),
            ("PATCH", lambda m: f"/api/models/{m.pk}/", {"description": "Changed by A", "is_active": False}),
            ("DELETE", lambda m: f"/api/models/{m.pk}/"),
        ],
    ),
    Case(
        name="deployments",
        make=lambda org: _deployment_with_a_sibling(org),
        requests=[
            ("GET", lambda d: f"/api/deployments/{d.pk}/"),
            ("PATCH", lambda d: f"/api/deployments/{d.pk}/", {"weight": 7, "upstream_model": "changed-by-a"}),
            ("DELETE", lambda d: f"/api/deployments/{d.pk}/"),
        ],
    ),
]


# Billing: price entries (read-only; the global book is shared by design, another organization's own entry
# is not), budgets, alert channels. Ids inside request bodies (a team, key or user of another organization
# in a budget) are tested in tests/billing/test_api.py.

from tests.billing.factories import AlertChannelFactory, BudgetFactory, PriceFactory  # noqa: E402

CASES += [
    Case(
        name="prices",
        make=lambda org: PriceFactory(organization=org),
        requests=[
            ("GET", lambda p: f"/api/prices/{p.pk}/"),
        ],
    ),
    Case(
        name="budgets",
        make=lambda org: BudgetFactory(organization=org),
        requests=[
            ("GET", lambda b: f"/api/budgets/{b.pk}/"),
            ("PATCH", lambda b: f"/api/budgets/{b.pk}/", {"amount": "5", "hard": False}),
            ("DELETE", lambda b: f"/api/budgets/{b.pk}/"),
        ],
    ),
    Case(
        name="alert_channels",
        make=lambda org: AlertChannelFactory(organization=org),
        requests=[
            ("GET", lambda c: f"/api/alert-channels/{c.pk}/"),
            ("PATCH", lambda c: f"/api/alert-channels/{c.pk}/", {"name": "Renamed by A", "enabled": False}),
            ("DELETE", lambda c: f"/api/alert-channels/{c.pk}/"),
            ("POST", lambda c: f"/api/alert-channels/{c.pk}/test/", {}),
        ],
    ),
    Case(
        name="alert_webhook_channels",
        make=lambda org: AlertChannelFactory(organization=org, webhook=True),
        requests=[
            ("POST", lambda c: f"/api/alert-channels/{c.pk}/rotate-secret/", {}),
        ],
    ),
]


def _credit_account(org):
    from billing.credits import credit_account_get

    return credit_account_get(organization=org, user=MembershipFactory(organization=org, role=Role.MEMBER).user)


CASES += [
    Case(
        name="credit_accounts",
        make=_credit_account,
        requests=[
            ("GET", lambda a: f"/api/credits/accounts/{a.pk}/entries/"),
        ],
    ),
]
