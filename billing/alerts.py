"""Alerts: channel configuration, firing, and delivery with retries (services; tasks in tasks_alerts.py).

Delivery is at least once and idempotent per (alert, channel): an attempt first *claims* the row
(a conditional UPDATE that pushes next_attempt_at a lease ahead), so duplicate Celery messages or
overlapping periodic runs cannot send twice; a SENT delivery is never sent again. Failures retry
with exponential backoff (30 s doubling, jitter, at most 1 h per wait) for 24 hours, then the
delivery fails and the channel is disabled with an email to the organization's owners and admins.
"""

import logging
import random
import re
import secrets
from datetime import timedelta
from functools import partial
from urllib.parse import urlsplit

from celery import signature
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import get_connection, send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from accounts.models import Membership, Organization, Role
from accounts.permissions import Perm, has_perm
from accounts.services import audit_record
from accounts.tenancy import OrgContext
from billing import webhooks
from billing.channels import SENDERS, Outcome
from billing.models import Alert, AlertChannel, AlertDelivery, Budget
from keys.egress import check_url
from keys.encryption import decrypt, encrypt, rotate

log = logging.getLogger(__name__)

BACKOFF_FIRST = 30  # seconds
BACKOFF_CAP = 3600  # longest single wait
RETRY_WINDOW = timedelta(hours=24)  # from the first attempt (the delivery's creation)
CLAIM_LEASE = timedelta(minutes=5)  # longer than any single attempt (15 s HTTP timeout)
STALE_PENDING = timedelta(minutes=2)  # a pending delivery whose task message was lost
MAX_RECIPIENTS = 20
URL_KINDS = {AlertChannel.Kind.WEBHOOK, AlertChannel.Kind.FEISHU, AlertChannel.Kind.DINGTALK, AlertChannel.Kind.WECOM}
SIGNED_BOT_KINDS = {AlertChannel.Kind.FEISHU, AlertChannel.Kind.DINGTALK}  # secret issued by the bot, optional


# --- Channel configuration -----------------------------------------------------------------------


def _require(actor: OrgContext, perm: Perm) -> None:
    if not has_perm(actor.role, perm):
        raise ApplicationError(_("Your role does not allow this."), code="permission_denied", status=403)


def _check_own(actor: OrgContext, channel: AlertChannel) -> None:
    if channel.organization_id != actor.organization.pk:
        raise ApplicationError(_("Not found."), code="not_found", status=404)


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ApplicationError(_("A channel needs a name of at most 120 characters."), field="name")
    return name


def _check_target(kind: str, target: str) -> str:
    target = (target or "").strip()
    if kind == AlertChannel.Kind.EMAIL:
        addresses = list(dict.fromkeys(a.strip().lower() for a in target.split(",") if a.strip()))
        if not addresses or len(addresses) > MAX_RECIPIENTS:
            raise ApplicationError(_("Give 1 to %(n)s email addresses, separated by commas.") % {"n": MAX_RECIPIENTS}, field="target")
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError as exc:
                raise ApplicationError(_("“%(address)s” is not a valid email address.") % {"address": address}, field="target") from exc
        return ", ".join(addresses)
    if len(target) > 2000:
        raise ApplicationError(_("The URL is too long."), field="target")
    check_url(target, field="target")  # no lookup: the address is checked when connecting (keys.egress)
    return target


def _check_secret(kind: str, secret: str) -> str:
    secret = (secret or "").strip()
    if not secret:
        return ""
    if kind == AlertChannel.Kind.WEBHOOK:
        try:
            webhooks.secret_key(secret)
        except ValueError as exc:
            raise ApplicationError(str(exc), field="secret") from exc
    elif kind in SIGNED_BOT_KINDS:
        if len(secret) > 200 or any(c.isspace() for c in secret):
            raise ApplicationError(_("Paste the signing secret exactly as the bot settings show it."), field="secret")
    else:
        raise ApplicationError(_("This kind of channel has no secret."), field="secret")
    return secret


def _set_target(channel: AlertChannel, target: str) -> None:
    """Email addresses in `target`; a webhook or bot URL encrypted (it carries a token), with a hint to show."""
    if channel.has_url:
        channel.target = ""
        channel.set_url(target)
    else:
        channel.target = target


def _target_changed(channel: AlertChannel, target: str) -> bool:
    if not channel.has_url:
        return target != channel.target
    if target == channel.url_hint:  # the masked form an API client read back: not a new URL
        return False
    try:
        return target != channel.url()
    except ValueError:  # undecryptable under the configured keys: a new URL replaces it
        return True


@transaction.atomic
def alert_channel_create(
    *, actor: OrgContext, name: str, kind: str, target: str, secret: str = "", enabled: bool = True, ip=None
) -> tuple[AlertChannel, str | None]:
    """A new channel. For a webhook, the signing secret (generated unless given) is returned now and never again."""
    _require(actor, Perm.MANAGE_BUDGETS)
    if kind not in AlertChannel.Kind.values:
        raise ApplicationError(_("Unknown channel kind."), field="kind")
    name, target, secret = _check_name(name), _check_target(kind, target), _check_secret(kind, secret)
    if kind == AlertChannel.Kind.WEBHOOK and not secret:
        secret = webhooks.new_secret()
    channel = AlertChannel(organization=actor.organization, name=name, kind=kind, secret_encrypted=encrypt(secret), enabled=bool(enabled))
    _set_target(channel, target)
    channel.save()
    audit_record(
        organization=actor.organization, actor=actor.user, action="alert_channel.create", target=channel, ip=ip,
        data={"kind": kind, "target": channel.destination, "signed": bool(secret)},
    )
    return channel, (secret if kind == AlertChannel.Kind.WEBHOOK else None)


@transaction.atomic
def alert_channel_update(
    *, actor: OrgContext, channel: AlertChannel, name=None, target=None, secret=None, enabled=None, ip=None
) -> AlertChannel:
    """Change name, destination, bot secret or enabled state; re-enabling clears the disabled reason."""
    _require(actor, Perm.MANAGE_BUDGETS)
    _check_own(actor, channel)
    changed = []
    if name is not None and name.strip() != channel.name:
        channel.name = _check_name(name)
        changed.append("name")
    if target is not None and _target_changed(channel, target.strip()):
        _set_target(channel, _check_target(channel.kind, target))
        changed.append("target")
    if secret is not None:
        if channel.kind == AlertChannel.Kind.WEBHOOK:
            raise ApplicationError(_("Rotate a webhook secret instead of setting it."), field="secret")
        channel.secret_encrypted = encrypt(_check_secret(channel.kind, secret))
        changed.append("secret")
    if enabled is not None and bool(enabled) != channel.enabled:
        channel.enabled = bool(enabled)
        channel.disabled_reason = "" if enabled else _("Disabled in the settings.")
        changed.append("enabled")
    channel.save()
    data = {"changed": changed, **({"target": channel.destination} if "target" in changed else {})}
    audit_record(organization=channel.organization, actor=actor.user, action="alert_channel.update", target=channel, data=data, ip=ip)
    return channel


@transaction.atomic
def alert_channel_delete(*, actor: OrgContext, channel: AlertChannel, ip=None) -> None:
    _require(actor, Perm.MANAGE_BUDGETS)
    _check_own(actor, channel)
    audit_record(organization=channel.organization, actor=actor.user, action="alert_channel.delete", target=channel, ip=ip)
    channel.delete()


@transaction.atomic
def alert_channel_rotate_secret(*, actor: OrgContext, channel: AlertChannel, ip=None) -> tuple[AlertChannel, str]:
    """A new webhook secret, returned once; the old one keeps signing too until the next rotation."""
    _require(actor, Perm.MANAGE_BUDGETS)
    _check_own(actor, channel)
    if channel.kind != AlertChannel.Kind.WEBHOOK:
        raise ApplicationError(_("Only webhook channels have a secret that Tollgate issues."), field="kind")
    channel = AlertChannel.objects.select_for_update().get(pk=channel.pk)
    secret = webhooks.new_secret()
    channel.previous_secret_encrypted = channel.secret_encrypted
    channel.secret_encrypted = encrypt(secret)
    channel.save(update_fields=["secret_encrypted", "previous_secret_encrypted"])
    audit_record(organization=channel.organization, actor=actor.user, action="alert_channel.rotate_secret", target=channel, ip=ip)
    return channel, secret


def alert_channels_reencrypt() -> int:
    """Re-encrypt every channel's URL and signing secrets under the primary key (key rotation)."""
    count = 0
    for channel in AlertChannel.objects.all().iterator():
        for field in ("url_encrypted", "secret_encrypted", "previous_secret_encrypted"):
            setattr(channel, field, rotate(getattr(channel, field)))
        channel.save(update_fields=["url_encrypted", "secret_encrypted", "previous_secret_encrypted"])
        count += 1
    return count


# --- Firing --------------------------------------------------------------------------------------


def _enqueue(delivery_id: int) -> None:
    # By name, so services need not import the task module (which imports this one).
    try:
        signature("billing.alert_deliver", args=(delivery_id,)).delay()
    except Exception as exc:  # broker down: alert_deliveries_due picks up stale pending deliveries
        log.warning("could not enqueue alert delivery %s: %s", delivery_id, exc.__class__.__name__)


def _create(
    *, organization: Organization, kind: str, dedupe_key: str, payload: dict, budget, channels
) -> tuple[Alert, list[AlertDelivery]] | None:
    try:
        with transaction.atomic():  # savepoint: a duplicate key must not break the caller's transaction
            alert = Alert.objects.create(organization=organization, kind=kind, dedupe_key=dedupe_key, payload=payload, budget=budget)
    except IntegrityError:
        return None
    deliveries = [
        AlertDelivery.objects.create(organization=organization, alert=alert, channel=channel, message_id=webhooks.new_message_id())
        for channel in channels
    ]
    return alert, deliveries


@transaction.atomic
def alert_fire(*, organization: Organization, kind: str, dedupe_key: str, payload: dict, budget: Budget | None = None) -> Alert | None:
    """Record an alert once per dedupe_key and queue one delivery per enabled channel; None if already fired."""
    channels = AlertChannel.objects.filter(organization=organization, enabled=True)
    created = _create(organization=organization, kind=kind, dedupe_key=dedupe_key, payload=payload, budget=budget, channels=channels)
    if created is None:
        return None
    alert, deliveries = created
    for delivery in deliveries:
        transaction.on_commit(partial(_enqueue, delivery.pk))
    return alert


def alert_send_test(*, actor: OrgContext, channel: AlertChannel, ip=None) -> AlertDelivery:
    """Send a test alert to one channel now (even a disabled one, to check a fix); returns the delivery.

    A test is tried once: it is not retried and never disables the channel.
    """
    _require(actor, Perm.MANAGE_BUDGETS)
    _check_own(actor, channel)
    with transaction.atomic():
        _, (delivery,) = _create(
            organization=channel.organization, kind="test", dedupe_key=f"test:{channel.pk}:{secrets.token_hex(8)}",
            payload={"channel": channel.name}, budget=None, channels=[channel],
        )
        audit_record(organization=channel.organization, actor=actor.user, action="alert_channel.test", target=channel, ip=ip)
    if _claim(delivery.pk, timezone.now()):
        _attempt(delivery.pk)
    delivery.refresh_from_db()
    return delivery


# --- Delivery ------------------------------------------------------------------------------------


def _claimable(now):
    return AlertDelivery.objects.filter(status__in=[AlertDelivery.Status.PENDING, AlertDelivery.Status.RETRYING]).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )


def _claim(delivery_id: int, now) -> bool:
    """Take the next attempt of a delivery for this worker, or False if it is sent, failed, not due or taken."""
    return bool(_claimable(now).filter(pk=delivery_id).update(next_attempt_at=now + CLAIM_LEASE, attempts=F("attempts") + 1))


def alert_deliver(*, delivery_id: int) -> AlertDelivery | None:
    """Make one attempt at a pending (or due) delivery; None when there was nothing to do."""
    if not _claim(delivery_id, timezone.now()):
        return None
    return _attempt(delivery_id)


def alert_deliveries_due(*, limit: int = 50) -> int:
    """Attempt deliveries whose retry time has come (and pending ones whose task was lost); returns attempts made."""
    now = timezone.now()
    due = Q(status=AlertDelivery.Status.RETRYING, next_attempt_at__lte=now) | Q(
        status=AlertDelivery.Status.PENDING, next_attempt_at__lte=now
    ) | Q(status=AlertDelivery.Status.PENDING, next_attempt_at__isnull=True, created_at__lte=now - STALE_PENDING)
    with transaction.atomic():
        # skip_locked lets parallel runs split the work on PostgreSQL; the claim below is what prevents doubles.
        candidates = list(
            AlertDelivery.objects.filter(due).order_by("next_attempt_at", "pk")
            .select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit]
        )
    attempted = 0
    for pk in candidates:
        if _claim(pk, timezone.now()):  # claimed one at a time, so a lease never runs out while waiting in the batch
            _attempt(pk)
            attempted += 1
    return attempted


def _backoff(attempts: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(max(retry_after, 1.0), BACKOFF_CAP)
    base = BACKOFF_FIRST * 2 ** min(max(attempts - 1, 0), 16)
    return min(base * random.uniform(0.8, 1.2), BACKOFF_CAP)


def _scrub(text: str, channel: AlertChannel) -> str:
    """No secret or bot token may reach the delivery log, whatever an exception says."""
    for token in (channel.secret_encrypted, channel.previous_secret_encrypted):
        try:
            plain = decrypt(token)
        except ValueError:  # undecryptable: then it was not sent either
            continue
        if plain:
            text = text.replace(plain, "***")
    if channel.kind in URL_KINDS:
        try:
            url = channel.url()
        except ValueError:  # undecryptable: then it was not sent either
            url = ""
        parts = urlsplit(url)
        for piece in (url, parts.path, parts.query):
            if len(piece) > 1:
                text = text.replace(piece, "***")
        text = re.sub(r"(?i)\b(sign|access_token|key)=[^&\s\"']+", r"\1=***", text)  # a replayable signature, a token
    return text[:300]


def _send(channel: AlertChannel, alert: Alert, delivery: AlertDelivery) -> Outcome:
    try:
        return SENDERS[channel.kind](channel, alert, delivery)
    except ApplicationError as exc:  # EgressRefused / EgressFailed: messages written for people
        return Outcome(False, None, exc.message)
    except Exception as exc:  # SMTP, network, a bad stored secret: log the class, keep retrying
        log.warning("alert delivery %s failed: %s", delivery.pk, exc.__class__.__name__)
        return Outcome(False, None, f"{exc.__class__.__name__}: {exc}")


def _attempt(delivery_id: int) -> AlertDelivery:
    delivery = AlertDelivery.objects.select_related("channel", "alert", "alert__organization").get(pk=delivery_id)
    # The message, and what the delivery log and a disabled channel say, in the organization's language.
    with translation.override(delivery.alert.organization.language):
        return _attempt_delivery(delivery)


def _attempt_delivery(delivery: AlertDelivery) -> AlertDelivery:
    channel, alert = delivery.channel, delivery.alert
    is_test = alert.kind == "test"
    if not channel.enabled and not is_test:
        outcome = Outcome(False, None, _("The channel is disabled."))
        return _record(delivery, status=AlertDelivery.Status.FAILED, outcome=outcome)
    outcome = _send(channel, alert, delivery)
    outcome = outcome._replace(error=_scrub(outcome.error, channel))
    now = timezone.now()
    if outcome.ok:
        return _record(delivery, status=AlertDelivery.Status.SENT, outcome=outcome, sent_at=now)
    if is_test:
        return _record(delivery, status=AlertDelivery.Status.FAILED, outcome=outcome)
    if outcome.status_code == 410 and channel.kind in URL_KINDS:  # Standard Webhooks: 410 Gone = stop sending
        _record(delivery, status=AlertDelivery.Status.FAILED, outcome=outcome)
        _channel_disable(channel, reason=_("The endpoint answered 410 Gone."))
        return delivery
    deadline = delivery.created_at + RETRY_WINDOW
    if now >= deadline:
        _record(delivery, status=AlertDelivery.Status.FAILED, outcome=outcome)
        if not channel.deliveries.filter(status=AlertDelivery.Status.SENT, sent_at__gt=delivery.created_at).exists():
            reason = _("Alerts could not be delivered for 24 hours (last error: %(error)s).") % {"error": outcome.error[:150]}
            _channel_disable(channel, reason=reason)
        return delivery
    next_attempt = min(now + timedelta(seconds=_backoff(delivery.attempts, outcome.retry_after)), deadline)
    return _record(delivery, status=AlertDelivery.Status.RETRYING, outcome=outcome, next_attempt_at=next_attempt)


def _record(delivery: AlertDelivery, *, status: str, outcome: Outcome, sent_at=None, next_attempt_at=None) -> AlertDelivery:
    fields = {
        "status": status, "last_status_code": outcome.status_code, "last_error": outcome.error[:300],
        "next_attempt_at": next_attempt_at, "sent_at": sent_at,
    }
    AlertDelivery.objects.filter(pk=delivery.pk).exclude(status=AlertDelivery.Status.SENT).update(**fields)
    for name, value in fields.items():
        setattr(delivery, name, value)
    return delivery


def _channel_disable(channel: AlertChannel, *, reason: str) -> None:
    """Disable once (the first failing delivery wins) and tell the owners and admins by email."""
    if not AlertChannel.objects.filter(pk=channel.pk, enabled=True).update(enabled=False, disabled_reason=reason[:300]):
        return
    channel.enabled, channel.disabled_reason = False, reason[:300]
    audit_record(organization=channel.organization, action="alert_channel.disable", target=channel, data={"reason": reason[:300]})
    transaction.on_commit(partial(_notify_admins, channel.pk))


def _notify_admins(channel_id: int) -> None:
    channel = AlertChannel.objects.select_related("organization").get(pk=channel_id)
    recipients = list(
        Membership.objects.filter(organization=channel.organization, role__in=[Role.OWNER, Role.ADMIN], user__is_active=True)
        .values_list("user__email", flat=True)
    )
    if not recipients:
        return
    link = settings.TOLLGATE_PUBLIC_URL.rstrip("/") + "/"
    try:
        with translation.override(channel.organization.language):
            _send_disabled_notice(channel, recipients, link)
    except Exception as exc:  # the channel stays disabled; the notice is best effort (see README fail-open table)
        log.warning("could not email the disabled-channel notice for channel %s: %s", channel_id, exc.__class__.__name__)


def _send_disabled_notice(channel: AlertChannel, recipients: list[str], link: str) -> None:
    send_mail(
        subject=_("Tollgate: the alert channel “%(name)s” was disabled") % {"name": channel.name},
        message=_(
            "The alert channel “%(name)s” (%(kind)s) of %(org)s was disabled.\n\nReason: %(reason)s\n\n"
            "Alerts are no longer sent to it. Fix the destination, send a test alert, then enable the channel again: %(link)s\n"
        ) % {"name": channel.name, "kind": channel.get_kind_display(), "org": channel.organization.name,
             "reason": channel.disabled_reason, "link": link},
        from_email=None, recipient_list=recipients, connection=get_connection(fail_silently=False, timeout=15),
    )


def credential_rejected_alert(*, deployment_id: int, status: int | None) -> Alert | None:
    """The relay saw the provider refuse a deployment's credential (401/403): alert the organization
    once per credential and day, by its channels, and by email to its owners and admins when it has no
    channel (someone must learn that the key was revoked or lost its permissions). None if already told."""
    from keys.models import Deployment

    deployment = Deployment.objects.select_related("credential", "organization", "model").filter(pk=deployment_id).first()
    if deployment is None:
        return None
    credential, organization = deployment.credential, deployment.organization
    day = timezone.now().strftime("%Y%m%d")
    alert = alert_fire(
        organization=organization, kind="credential.rejected", dedupe_key=f"credential-rejected:{credential.pk}:{day}",
        payload={"credential": credential.name, "provider": credential.provider, "model": deployment.model.name,
                 "status": status, "message": "The provider refused this credential; its deployments are cooling down."},
    )
    if alert is not None and not AlertChannel.objects.filter(organization=organization, enabled=True).exists():
        transaction.on_commit(partial(_email_admins_credential, organization.pk, credential.name, status))
    return alert


def _email_admins_credential(organization_id: int, credential: str, status: int | None) -> None:
    organization = Organization.objects.get(pk=organization_id)
    recipients = list(
        Membership.objects.filter(organization=organization, role__in=[Role.OWNER, Role.ADMIN], user__is_active=True)
        .values_list("user__email", flat=True)
    )
    if not recipients:
        return
    try:
        send_mail(
            subject=_("Tollgate: the provider rejected the credential “%(name)s”") % {"name": credential},
            message=_(
                "The provider answered HTTP %(status)s to the credential “%(name)s” of %(org)s: it was revoked, expired or "
                "lost its permissions. Its deployments are cooling down and requests fall back where they can.\n\n"
                "Replace the key in Tollgate: %(link)s\n"
            ) % {"status": status, "name": credential, "org": organization.name, "link": settings.TOLLGATE_PUBLIC_URL.rstrip("/") + "/"},
            from_email=None, recipient_list=recipients, connection=get_connection(fail_silently=False, timeout=15),
        )
    except Exception as exc:  # best effort, like the disabled-channel notice
        log.warning("could not email the credential-rejected notice for org %s: %s", organization_id, exc.__class__.__name__)


def credential_low_balance_alert(*, credential_id: int) -> Alert | None:
    """The polled balance of a credential is below its threshold: alert once per credential and day."""
    from keys.balances import balance_is_low
    from keys.models import ProviderCredential

    credential = ProviderCredential.objects.select_related("organization").filter(pk=credential_id).first()
    if credential is None or not balance_is_low(credential):
        return None
    day = timezone.now().strftime("%Y%m%d")
    return alert_fire(
        organization=credential.organization, kind="credential.low_balance", dedupe_key=f"credential-low-balance:{credential.pk}:{day}",
        payload={"credential": credential.name, "provider": credential.provider, "balance": str(credential.balance),
                 "currency": credential.balance_currency, "threshold": str(credential.low_balance_threshold),
                 "message": "The provider account's balance is below the alert threshold; top it up before requests fail."},
    )
