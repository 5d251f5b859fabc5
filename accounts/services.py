"""Writes for organizations, teams, members, invitations and API tokens; each one is audited."""

from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.crypto import keyed_hash, new_secret, visible_prefix
from accounts.errors import ApplicationError
from accounts.extensions import member_joined
from accounts.models import ApiToken, AuditLog, Invitation, Membership, Organization, Role, Team, User
from accounts.permissions import ROLE_RANK, Perm, has_perm
from accounts.tenancy import OrgContext

API_TOKEN_PREFIX = "tgo_"
INVITATION_TOKEN_PREFIX = "tgi_"


def audit_record(*, organization, actor=None, action: str, target=None, data=None, ip=None) -> AuditLog:
    """Append one audit entry. `data` must never hold a secret (tests push canaries through)."""
    return AuditLog.objects.create(
        organization=organization,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=str(actor)[:200] if actor else "",
        action=action,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:200] if target is not None else "",
        data=data or {},
        ip=ip,
    )


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _supported_language(language: str | None) -> str:
    """One of settings.LANGUAGES for a language code such as "zh-CN" or "en-us"; English when there is none."""
    try:
        return translation.get_supported_language_variant(language or "")
    except LookupError:
        return settings.LANGUAGE_CODE


def _check_language(language: str) -> str:
    if language not in dict(settings.LANGUAGES):
        choices = ", ".join(code for code, _name in settings.LANGUAGES)
        raise ApplicationError(_("Unknown language. Choose one of: %(languages)s.") % {"languages": choices}, field="language")
    return language


@transaction.atomic
def organization_create(
    *, name: str, owner: User, time_zone: str = "UTC", currency: str = "USD", language: str | None = None, ip=None
) -> Organization:
    """A new organization owned by `owner`; its alert language is the creator's (`language`, else the active one)."""
    name = name.strip()
    if not name:
        raise ApplicationError(_("An organization needs a name."), field="name")
    language = _supported_language(language or translation.get_language())
    org = Organization.objects.create(name=name, slug=_unique_slug(name), time_zone=time_zone, currency=currency, language=language)
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    audit_record(organization=org, actor=owner, action="organization.create", target=org, ip=ip)
    return org


@transaction.atomic
def organization_update(*, actor: OrgContext, name=None, time_zone=None, currency=None, language=None, ip=None) -> Organization:
    _require(actor, Perm.MANAGE_ORG)
    org = actor.organization
    if language is not None:
        _check_language(language)
    changes = {}
    for field, value in (("name", name), ("time_zone", time_zone), ("currency", currency), ("language", language)):
        if value is not None and getattr(org, field) != value:
            changes[field] = value
            setattr(org, field, value)
    org.full_clean()
    org.save()
    audit_record(organization=org, actor=actor.user, action="organization.update", target=org, data=changes, ip=ip)
    return org


def user_signup(
    *, email: str, password: str, name: str = "", organization_name: str, language: str | None = None, ip=None
) -> tuple[User, Organization]:
    """Open sign-up: a new, unverified user and their first organization, of which they are the owner.

    The account cannot log in until the emailed link is followed (accounts/signup.py).
    """
    from accounts import signup

    if not signup.open_signup():
        raise ApplicationError(_("Sign-up is by invitation only."), code="signup_closed", status=403)
    email = User.objects.normalize_email(email).strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ApplicationError(_("An account with this email already exists."), field="email", code="duplicate")
    with transaction.atomic():
        try:
            user = User.objects.create_user(email=email, password=password, name=name.strip(), email_verified=False)
        except IntegrityError as exc:
            raise ApplicationError(_("An account with this email already exists."), field="email", code="duplicate") from exc
        org = organization_create(name=organization_name, owner=user, language=language, ip=ip)
        signup.send_verification(user)
    return user, org


def _require(actor: OrgContext, perm: Perm) -> None:
    if not has_perm(actor.role, perm):
        raise ApplicationError(_("Your role does not allow this."), code="permission_denied", status=403)


@transaction.atomic
def team_create(*, actor: OrgContext, name: str, ip=None) -> Team:
    _require(actor, Perm.MANAGE_MEMBERS)
    name = name.strip()
    if not name:
        raise ApplicationError(_("A team needs a name."), field="name")
    if Team.objects.filter(organization=actor.organization, name__iexact=name).exists():
        raise ApplicationError(_("A team with this name already exists."), field="name", code="duplicate")
    team = Team.objects.create(organization=actor.organization, name=name)
    audit_record(organization=actor.organization, actor=actor.user, action="team.create", target=team, ip=ip)
    return team


@transaction.atomic
def team_rename(*, actor: OrgContext, team: Team, name: str, ip=None) -> Team:
    _require(actor, Perm.MANAGE_MEMBERS)
    name = name.strip()
    if not name:
        raise ApplicationError(_("A team needs a name."), field="name")
    if Team.objects.filter(organization=team.organization, name__iexact=name).exclude(pk=team.pk).exists():
        raise ApplicationError(_("A team with this name already exists."), field="name", code="duplicate")
    old = team.name
    team.name = name
    team.save(update_fields=["name"])
    audit_record(organization=team.organization, actor=actor.user, action="team.rename", target=team, data={"from": old}, ip=ip)
    return team


@transaction.atomic
def team_delete(*, actor: OrgContext, team: Team, ip=None) -> None:
    _require(actor, Perm.MANAGE_MEMBERS)
    audit_record(organization=team.organization, actor=actor.user, action="team.delete", target=team, ip=ip)
    team.delete()


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise ApplicationError(
            _("Unknown role. Choose one of: %(roles)s.") % {"roles": ", ".join(Role.values)}, field="role", code="invalid_choice"
        )
    return role


def _check_may_assign(actor: OrgContext, *, current: str | None, new: str) -> None:
    """Only owners touch the owner role; nobody raises anyone above their own rank."""
    _require(actor, Perm.MANAGE_MEMBERS)
    touches_owner = Role.OWNER in (current, new)
    if touches_owner and not has_perm(actor.role, Perm.MANAGE_OWNERS):
        raise ApplicationError(_("Only an owner can grant or remove the owner role."), field="role", code="permission_denied", status=403)
    if ROLE_RANK[new] > ROLE_RANK[actor.role]:
        raise ApplicationError(_("You cannot grant a role above your own."), field="role", code="permission_denied", status=403)


@transaction.atomic
def membership_set_role(*, actor: OrgContext, membership: Membership, role: str, ip=None) -> Membership:
    role = _check_role(role)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _check_may_assign(actor, current=membership.role, new=role)
    if membership.role == Role.OWNER and role != Role.OWNER:
        _check_not_last_owner(membership)
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        organization=membership.organization, actor=actor.user, action="member.role_change", target=membership,
        data={"from": old, "to": role}, ip=ip,
    )
    return membership


def _check_not_last_owner(membership: Membership) -> None:
    owners = Membership.objects.filter(organization=membership.organization, role=Role.OWNER).exclude(pk=membership.pk)
    if not owners.exists():
        raise ApplicationError(_("An organization must keep at least one owner."), field="role", code="last_owner")


@transaction.atomic
def membership_set_teams(*, actor: OrgContext, membership: Membership, teams: list[Team], ip=None) -> Membership:
    _require(actor, Perm.MANAGE_MEMBERS)
    if any(team.organization_id != membership.organization_id for team in teams):
        raise ApplicationError(_("Unknown team."), field="teams", code="not_found")
    membership.teams.set(teams)
    audit_record(
        organization=membership.organization, actor=actor.user, action="member.teams_change", target=membership,
        data={"teams": [t.name for t in teams]}, ip=ip,
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: OrgContext, membership: Membership, ip=None) -> None:
    if actor.user is None or membership.user_id != getattr(actor.user, "pk", None):
        _check_may_assign(actor, current=membership.role, new=Role.VIEWER)
    if membership.role == Role.OWNER:
        _check_not_last_owner(membership)
    audit_record(organization=membership.organization, actor=actor.user, action="member.remove", target=membership, ip=ip)
    membership.delete()


def invitation_link(token: str) -> str:
    """The absolute link an invitee opens; built from the token, which only its keyed hash remembers."""
    return settings.TOLLGATE_PUBLIC_URL.rstrip("/") + reverse("invitation_accept", args=[token])


def _invitation_email(invitation: Invitation, *, token: str, inviter) -> None:
    """Email the link once the transaction commits (a rolled-back invitation sends nothing)."""
    org, email, role, link = invitation.organization, invitation.email, invitation.role, invitation_link(token)
    inviter = str(inviter) if inviter else org.name
    transaction.on_commit(
        lambda: send_mail(
            subject=_("You are invited to %(org)s on Tollgate") % {"org": org.name},
            message=_("%(inviter)s invited you to join %(org)s as %(role)s.\n\nAccept within %(days)s days: %(link)s\n")
            % {"inviter": inviter, "org": org.name, "role": role, "days": settings.TOLLGATE_INVITATION_DAYS, "link": link},
            from_email=None,
            recipient_list=[email],
            fail_silently=True,
        )
    )


@transaction.atomic
def invitation_create(*, actor: OrgContext, email: str, role: str = Role.MEMBER, team: Team | None = None, ip=None) -> tuple[Invitation, str]:
    """Create an invitation and email its single-use link; returns the token (never stored), which the
    caller may show once so the inviter can pass the link on themselves (invitation_link)."""
    role = _check_role(role)
    _check_may_assign(actor, current=None, new=role)
    org = actor.organization
    email = User.objects.normalize_email(email).strip().lower()
    if team is not None and team.organization_id != org.pk:
        raise ApplicationError(_("Unknown team."), field="team", code="not_found")
    if Membership.objects.filter(organization=org, user__email__iexact=email).exists():
        raise ApplicationError(_("This person is already a member."), field="email", code="duplicate")
    Invitation.objects.filter(organization=org, email__iexact=email, accepted_at=None, revoked_at=None).update(revoked_at=timezone.now())
    token = new_secret(INVITATION_TOKEN_PREFIX)
    invitation = Invitation.objects.create(
        organization=org, email=email, role=role, team=team, token_hash=keyed_hash(token), invited_by=actor.user,
        expires_at=timezone.now() + timedelta(days=settings.TOLLGATE_INVITATION_DAYS),
    )
    audit_record(organization=org, actor=actor.user, action="invitation.create", target=invitation, data={"role": role}, ip=ip)
    _invitation_email(invitation, token=token, inviter=actor.user)
    return invitation, token


@transaction.atomic
def invitation_resend(*, actor: OrgContext, invitation: Invitation, ip=None) -> tuple[Invitation, str]:
    """A new link for an open (or expired) invitation: a new token and expiry, emailed again. The old
    link stops working at once (only the new token's hash is kept). Returns the new token."""
    _check_may_assign(actor, current=None, new=invitation.role)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None:
        raise ApplicationError(_("This invitation has already been accepted."), code="already_accepted")
    if invitation.revoked_at is not None:
        raise ApplicationError(_("This invitation was revoked. Invite the person again."), code="revoked")
    token = new_secret(INVITATION_TOKEN_PREFIX)
    invitation.token_hash = keyed_hash(token)
    invitation.expires_at = timezone.now() + timedelta(days=settings.TOLLGATE_INVITATION_DAYS)
    invitation.save(update_fields=["token_hash", "expires_at"])
    audit_record(organization=invitation.organization, actor=actor.user, action="invitation.resend", target=invitation, ip=ip)
    _invitation_email(invitation, token=token, inviter=actor.user)
    return invitation, token


def invitation_lookup(*, token: str) -> Invitation:
    """The pending invitation for a token, or an ApplicationError saying why not."""
    invitation = Invitation.objects.select_related("organization").filter(token_hash=keyed_hash(token)).first()
    if invitation is None or invitation.revoked_at is not None:
        raise ApplicationError(_("This invitation link is not valid."), field="token", code="invalid_token", status=404)
    if invitation.accepted_at is not None:
        raise ApplicationError(_("This invitation has already been used."), field="token", code="used_token")
    if invitation.expires_at <= timezone.now():
        raise ApplicationError(_("This invitation has expired. Ask for a new one."), field="token", code="expired_token")
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user: User, ip=None) -> Membership:
    invitation = invitation_lookup(token=token)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None:  # lost a race with a second click
        raise ApplicationError(_("This invitation has already been used."), field="token", code="used_token")
    if invitation.email.lower() != user.email.lower():
        raise ApplicationError(_("This invitation was sent to another email address."), field="token", code="wrong_user", status=403)
    membership, created = Membership.objects.get_or_create(
        organization=invitation.organization, user=user, defaults={"role": invitation.role}
    )
    if invitation.team_id:
        membership.teams.add(invitation.team_id)
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(organization=invitation.organization, actor=user, action="invitation.accept", target=invitation, ip=ip)
    member_joined(membership=membership, created=created, invitation=invitation)  # e.g. credit grants, in this transaction
    return membership


@transaction.atomic
def invitation_revoke(*, actor: OrgContext, invitation: Invitation, ip=None) -> None:
    _require(actor, Perm.MANAGE_MEMBERS)
    if invitation.accepted_at is not None:
        raise ApplicationError(_("This invitation has already been accepted."), code="already_accepted")
    if invitation.revoked_at is not None:
        return
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(organization=invitation.organization, actor=actor.user, action="invitation.revoke", target=invitation, ip=ip)


def invitations_expire() -> int:
    """Housekeeping: nothing to change (expiry is checked on use); returns how many are stale."""
    return Invitation.objects.filter(accepted_at=None, revoked_at=None, expires_at__lte=timezone.now()).count()


@transaction.atomic
def api_token_create(*, organization: Organization, name: str, role: str = Role.ADMIN, actor=None, ip=None) -> tuple[ApiToken, str]:
    """An org-scoped REST API token. The secret is returned once and only its keyed hash is kept."""
    role = _check_role(role)
    if role == Role.OWNER:
        raise ApplicationError(_("API tokens cannot hold the owner role."), field="role", code="invalid_choice")
    secret = new_secret(API_TOKEN_PREFIX)
    token = ApiToken.objects.create(
        organization=organization, name=name.strip() or "token", role=role, prefix=visible_prefix(secret),
        token_hash=keyed_hash(secret), created_by=actor if getattr(actor, "pk", None) else None,
    )
    audit_record(organization=organization, actor=actor, action="api_token.create", target=token, data={"role": role}, ip=ip)
    return token, secret


@transaction.atomic
def api_token_revoke(*, actor: OrgContext, token: ApiToken, ip=None) -> None:
    _require(actor, Perm.MANAGE_ORG)
    if token.revoked_at is not None:
        return
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(organization=token.organization, actor=actor.user, action="api_token.revoke", target=token, ip=ip)
