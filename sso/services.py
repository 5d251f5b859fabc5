"""Writes for single sign-on: an organization's connection, and what a sign-in through it does.

A sign-in is decided here, not by allauth: the address must be in the connection's allowed domains; an
account already linked to this connection signs in; otherwise an account with that address is linked only
when it is already a member of the organization (an organization's identity provider must not take over an
account that belongs to someone outside it); otherwise a new account is made. A user who is not a member
joins with the default role when auto-join is on. Every step is audited.
"""

import re

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from accounts.extensions import member_joined
from accounts.models import Membership, Organization, Role, User
from accounts.services import _require, audit_record
from accounts.permissions import Perm
from accounts.tenancy import OrgContext
from keys import egress, encryption
from sso import kinds
from sso.models import SsoConnection

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
JOINABLE_ROLES = (Role.ADMIN, Role.MEMBER, Role.VIEWER)  # never owner: ownership is granted by an owner


class SsoRefused(ApplicationError):
    """A sign-in the connection's rules do not allow; `reason` is a stable code for the audit log."""

    def __init__(self, message: str, *, reason: str):
        super().__init__(message, code="sso_refused", status=403)
        self.reason = reason


def _check_domains(domains) -> list[str]:
    if isinstance(domains, str):
        domains = re.split(r"[\s,;]+", domains)
    cleaned = []
    for domain in domains or []:
        domain = str(domain).strip().lower().lstrip("@")
        if not domain:
            continue
        if not DOMAIN_RE.match(domain):
            raise ApplicationError(_("%(domain)s is not a domain name, e.g. example.com.") % {"domain": domain}, field="allowed_domains")
        if domain not in cleaned:
            cleaned.append(domain)
    return cleaned


def _check(connection: SsoConnection) -> None:
    if connection.kind not in dict(kinds.CHOICES):
        raise ApplicationError(_("Choose a provider."), field="kind")
    if not connection.client_id.strip():
        raise ApplicationError(_("The client ID is required."), field="client_id")
    if not connection.client_secret_encrypted:
        raise ApplicationError(_("The client secret is required."), field="client_secret")
    if connection.kind == kinds.OIDC:
        if not connection.issuer_url:
            raise ApplicationError(_("OpenID Connect needs the issuer URL."), field="issuer_url")
        egress.check_url(connection.issuer_url, field="issuer_url")
    if connection.kind == kinds.WECOM and not connection.agent_id.strip():
        raise ApplicationError(_("WeCom needs the application's AgentId."), field="agent_id")
    if connection.default_role not in JOINABLE_ROLES:
        raise ApplicationError(_("New members can join as admin, member or viewer."), field="default_role")


EDITABLE = ("kind", "display_name", "client_id", "issuer_url", "agent_id", "allowed_domains", "default_role", "auto_join", "require_sso", "enabled")


@transaction.atomic
def sso_connection_save(*, actor: OrgContext, client_secret: str | None = None, ip=None, **fields) -> SsoConnection:
    """Create or change the organization's connection; `client_secret` None or "" keeps the stored one."""
    _require(actor, Perm.MANAGE_ORG)
    connection = SsoConnection.objects.select_for_update().filter(organization=actor.organization).first()
    created = connection is None
    if created:
        connection = SsoConnection(organization=actor.organization)
    changes = {}
    for field in EDITABLE:
        if field not in fields or fields[field] is None:
            continue
        value = fields[field]
        if field == "allowed_domains":
            value = _check_domains(value)
        elif isinstance(value, str):
            value = value.strip()
        if getattr(connection, field) != value or created:
            changes[field] = value
            setattr(connection, field, value)
    if client_secret:
        connection.client_secret_encrypted = encryption.encrypt(client_secret)
        connection.client_secret_hint = client_secret[-4:]
        changes["client_secret"] = "changed"  # the audit log says that it changed, never what it is
    _check(connection)
    connection.save()
    audit_record(
        organization=actor.organization, actor=actor.user, action="sso.create" if created else "sso.update",
        target=connection, data=changes, ip=ip,
    )
    return connection


@transaction.atomic
def sso_connection_delete(*, actor: OrgContext, ip=None) -> None:
    _require(actor, Perm.MANAGE_ORG)
    connection = SsoConnection.objects.filter(organization=actor.organization).first()
    if connection is None:
        raise ApplicationError(_("This organization has no single sign-on."), code="not_found", status=404)
    audit_record(organization=actor.organization, actor=actor.user, action="sso.delete", target=connection, ip=ip)
    connection.delete()


def _domain_allowed(connection: SsoConnection, email: str) -> bool:
    domain = email.rpartition("@")[2].lower()
    return not connection.allowed_domains or domain in connection.allowed_domains


@transaction.atomic
def sso_sign_in(*, connection: SsoConnection, email: str, name: str = "", linked_user: User | None = None, ip=None) -> tuple[User, Membership]:
    """The account and membership a verified sign-in through `connection` resolves to; SsoRefused otherwise.

    `linked_user` is the account already linked to this identity at this connection, if any.
    """
    org: Organization = connection.organization
    email = User.objects.normalize_email(email or "").strip().lower()
    if "@" not in email:
        raise SsoRefused(_("%(provider)s did not share an email address, so Tollgate cannot tell who you are. Ask your administrator to grant the email permission.") % {"provider": connection.button_name}, reason="no_email")
    if not _domain_allowed(connection, email):
        raise SsoRefused(
            _("%(email)s cannot sign in to %(org)s: only addresses at %(domains)s can.")
            % {"email": email, "org": org.name, "domains": ", ".join(connection.allowed_domains)},
            reason="domain_not_allowed",
        )
    user = linked_user or User.objects.filter(email__iexact=email).first()
    membership = Membership.objects.filter(organization=org, user=user).first() if user else None
    if user is not None and linked_user is None and membership is None:
        raise SsoRefused(
            _("An account with %(email)s already exists and is not a member of %(org)s. Log in with its password, or ask an administrator of %(org)s to invite it.")
            % {"email": email, "org": org.name},
            reason="account_exists",
        )
    if membership is None and not connection.auto_join:
        raise SsoRefused(
            _("%(org)s does not let new members join by signing in. Ask an administrator for an invitation.") % {"org": org.name},
            reason="auto_join_off",
        )
    if user is not None and not user.is_active:
        raise SsoRefused(_("This account is deactivated."), reason="inactive")
    if user is None:
        user = User.objects.create_user(email=email, password=None, name=(name or "").strip()[:150])
        audit_record(organization=org, actor=user, action="user.create_sso", target=user, data={"provider": connection.kind}, ip=ip)
    elif not user.email_verified:
        user.email_verified = True  # the identity provider vouched for the address
        user.save(update_fields=["email_verified"])
    if membership is None:
        membership = Membership.objects.create(organization=org, user=user, role=connection.default_role)
        audit_record(
            organization=org, actor=user, action="member.join_sso", target=membership,
            data={"role": connection.default_role, "provider": connection.kind}, ip=ip,
        )
        member_joined(membership=membership, created=True)  # e.g. the sign-up credit grant, in this transaction
    return user, membership


def sso_refusal_record(*, connection: SsoConnection, email: str, reason: str, ip=None) -> None:
    """An audit entry for a refused sign-in (the address and why; never a token)."""
    audit_record(
        organization=connection.organization, action="sso.login_refused", target=connection,
        data={"email": (email or "")[:200], "reason": reason, "provider": connection.kind}, ip=ip,
    )


def sso_login_record(*, connection: SsoConnection, user: User, ip=None) -> None:
    audit_record(organization=connection.organization, actor=user, action="sso.login", target=connection, data={"provider": connection.kind}, ip=ip)


@transaction.atomic
def sso_secrets_reencrypt() -> int:
    """Re-encrypt every stored client secret under the primary key (tollgate_rotate_credentials)."""
    count = 0
    for connection in SsoConnection.objects.select_for_update().iterator():
        connection.client_secret_encrypted = encryption.rotate(connection.client_secret_encrypted)
        connection.save(update_fields=["client_secret_encrypted"])
        count += 1
    return count
