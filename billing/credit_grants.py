"""The organization's grant policy, and the grants it gives when a member joins (accounts.extensions).

Each grant carries a source unique in its organization ("signup:<user>", "invite:<invitation>:inviter",
...), and runs inside the joining transaction, which holds the invitation's row lock: an acceptance that
is retried, or raced by a second click, grants nothing twice.
"""

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from accounts.permissions import Perm
from accounts.services import audit_record
from billing.credit_models import CreditAccount, CreditEntry, CreditPolicy
from billing.credits import check_amount, credit_account_get, credit_in, require

Kind = CreditEntry.Kind
POLICY_AMOUNTS = ("signup_amount", "inviter_amount", "invitee_amount")


def credit_policy_get(*, organization) -> CreditPolicy:
    """The organization's policy; an unsaved one of zeros (no grants) when none was set."""
    return CreditPolicy.objects.filter(organization=organization).first() or CreditPolicy(organization=organization)


def credit_policy_set(*, actor, ip=None, **values) -> CreditPolicy:
    """Set any of: the three grant amounts (0: none), inviter_cap and grant_expiry_days (None: no
    limit), low_balance (None: no alert). Field errors name the field."""
    require(actor, Perm.MANAGE_BUDGETS)
    clean = {}
    for name in POLICY_AMOUNTS:
        if name in values:
            value = values[name]
            clean[name] = Decimal(0) if value in (None, "", 0, "0") else check_amount(value, name)
    for name in ("inviter_cap", "grant_expiry_days"):
        if name in values:
            clean[name] = _whole(values[name], name)
    if "low_balance" in values:
        clean["low_balance"] = None if values["low_balance"] in (None, "") else check_amount(values["low_balance"], "low_balance")
    with transaction.atomic():
        policy, _created = CreditPolicy.objects.select_for_update().get_or_create(organization=actor.organization)
        changes = {}
        for name, value in clean.items():
            if getattr(policy, name) != value:
                changes[name] = None if value is None else str(value)
                setattr(policy, name, value)
        policy.save()
        audit_record(organization=actor.organization, actor=actor.user, action="credit.policy", target=policy, data=changes, ip=ip)
    return policy


def _whole(value, field: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(str(value).strip())
    except ValueError as exc:
        raise ApplicationError(_("Enter a whole number."), field=field) from exc
    if number < 1 or number > 100_000:
        raise ApplicationError(_("Enter a whole number from 1 to 100000, or leave it empty for no limit."), field=field)
    return number


def credit_member_joined(*, membership, created: bool, invitation=None) -> None:
    """The listener billing registers with accounts: the sign-up grant to a new member, and the
    invitation grants to both sides of an accepted invitation (the inviter's within the policy's cap)."""
    policy = CreditPolicy.objects.filter(organization_id=membership.organization_id).first()
    if policy is None:
        return
    org, user = membership.organization, membership.user
    expires = timezone.now() + timedelta(days=policy.grant_expiry_days) if policy.grant_expiry_days else None
    if created and policy.signup_amount > 0:
        _grant(org, user, Kind.SIGNUP, policy.signup_amount, f"signup:{user.pk}", expires)
    if invitation is None:
        return
    if policy.invitee_amount > 0:
        _grant(org, user, Kind.INVITEE, policy.invitee_amount, f"invite:{invitation.pk}:invitee", expires)
    inviter = invitation.invited_by
    if policy.inviter_amount > 0 and inviter is not None and inviter.pk != user.pk:
        account = credit_account_get(organization=org, user=inviter)
        # The account's row lock serialises this inviter's grants, so the cap holds under concurrency.
        CreditAccount.objects.select_for_update().get(pk=account.pk)
        given = CreditEntry.objects.filter(account=account, kind=Kind.INVITER).count()
        if policy.inviter_cap is None or given < policy.inviter_cap:
            _grant(org, inviter, Kind.INVITER, policy.inviter_amount, f"invite:{invitation.pk}:inviter", expires, reason=user.email)


def _grant(org, user, kind, amount, source, expires, reason: str = "") -> None:
    account = credit_account_get(organization=org, user=user)
    entry = credit_in(account=account, kind=kind, amount=amount, source=source, expires_at=expires, reason=reason)
    if entry is not None:
        audit_record(organization=org, actor=None, action="credit.grant", target=account,
                     data={"kind": kind, "amount": str(amount), "user": user.email})
