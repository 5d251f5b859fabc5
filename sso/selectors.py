"""Reads for single sign-on: which connection a sign-in uses, and whether a password login is allowed."""

from accounts.models import Membership, Role
from sso.models import SsoConnection

PROVIDER_ID_PREFIX = "org-"


def connection_for_slug(slug: str) -> SsoConnection | None:
    return SsoConnection.objects.select_related("organization").filter(organization__slug=slug, enabled=True).first()


def connection_for_org(organization_id) -> SsoConnection | None:
    return SsoConnection.objects.select_related("organization").filter(organization_id=organization_id).first()


def connection_for_provider_id(provider_id: str) -> SsoConnection | None:
    """allauth's provider id `org-<slug>` (the OIDC callback URL, a linked account) -> its enabled connection."""
    if not provider_id.startswith(PROVIDER_ID_PREFIX):
        return None
    return connection_for_slug(provider_id.removeprefix(PROVIDER_ID_PREFIX))


def password_login_refusal(user) -> SsoConnection | None:
    """The connection that forbids `user` a password login: one requiring SSO in an org where they are not owner.

    Owners keep their password: an identity provider that is down or misconfigured must not lock everyone out.
    """
    membership = (
        Membership.objects.filter(user=user, organization__sso_connection__enabled=True, organization__sso_connection__require_sso=True)
        .exclude(role=Role.OWNER)
        .select_related("organization__sso_connection")
        .first()
    )
    return membership.organization.sso_connection if membership else None
