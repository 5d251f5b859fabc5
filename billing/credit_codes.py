"""Redemption codes: generated in batches, shown once (as CSV), stored as keyed hashes, redeemed once.

A code is 20 characters from an alphabet without look-alikes (100 bits), grouped for reading:
TGC-XXXXX-XXXXX-XXXXX-XXXXX. Redeeming claims the row with one conditional UPDATE (not yet redeemed,
not expired), so of any number of concurrent redemptions exactly one credits the balance.
"""

import csv
import io
import secrets
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.crypto import keyed_hash
from accounts.errors import ApplicationError
from accounts.permissions import Perm
from accounts.services import audit_record
from billing.credit_models import CreditEntry, RedemptionCode
from billing.credits import check_amount, credit_account_get, credit_in, require

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_PREFIX = "TGC"
MAX_CODES_PER_BATCH = 10_000


def new_code() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(20))
    return "-".join([CODE_PREFIX, *(body[i:i + 5] for i in range(0, 20, 5))])


def normalise(code: str) -> str:
    """What a person may type for a code: any case, spaces or dashes anywhere."""
    return "".join(ch for ch in str(code).upper() if ch.isalnum())


def redemption_codes_generate(*, actor, count, amount, expires_at: datetime | None, ip=None) -> tuple[str, list[tuple[RedemptionCode, str]]]:
    """N single-use codes worth `amount` each until `expires_at`. Returns the batch id and (row, code)
    pairs: the codes themselves are never stored and cannot be shown again."""
    require(actor, Perm.MANAGE_BUDGETS)
    try:
        count = int(count)
    except (TypeError, ValueError) as exc:
        raise ApplicationError(_("Enter a whole number."), field="count") from exc
    if not 1 <= count <= MAX_CODES_PER_BATCH:
        raise ApplicationError(_("Generate from 1 to %(max)s codes at a time.") % {"max": MAX_CODES_PER_BATCH}, field="count")
    amount = check_amount(amount)
    if expires_at is None or expires_at <= timezone.now():
        raise ApplicationError(_("Choose an expiry in the future."), field="expires_at")
    batch = secrets.token_hex(8)
    codes = [new_code() for _ in range(count)]
    with transaction.atomic():
        rows = RedemptionCode.objects.bulk_create([
            RedemptionCode(
                organization=actor.organization, batch=batch, prefix=code[:9], code_hash=keyed_hash(normalise(code)),
                amount=amount, expires_at=expires_at, created_by=actor.user if getattr(actor.user, "pk", None) else None,
            )
            for code in codes
        ])
        audit_record(organization=actor.organization, actor=actor.user, action="credit.codes_generate", target=None,
                     data={"batch": batch, "count": count, "amount": str(amount), "expires_at": expires_at.isoformat()}, ip=ip)
    return batch, list(zip(rows, codes))


def redemption_code_redeem(*, actor, code: str, ip=None) -> CreditEntry:
    """Credit the caller's own balance with a code of their organization. Unknown, used and expired
    codes are refused with a field error (another organization's code is unknown here)."""
    user = actor.user
    if not getattr(user, "pk", None):
        raise ApplicationError(_("Only a signed-in member can redeem a code."), field="code", code="no_member", status=403)
    cleaned = normalise(code)
    if not cleaned:
        raise ApplicationError(_("Enter a code."), field="code")
    now = timezone.now()
    with transaction.atomic():
        mine = RedemptionCode.objects.filter(organization=actor.organization, code_hash=keyed_hash(cleaned))
        claimed = mine.filter(redeemed_at=None, expires_at__gt=now).update(redeemed_at=now, redeemed_by=user)
        if claimed != 1:
            found = mine.first()
            if found is None:
                raise ApplicationError(_("This code is not valid."), field="code", code="invalid_code")
            if found.redeemed_at is not None:
                raise ApplicationError(_("This code has already been redeemed."), field="code", code="used_code")
            raise ApplicationError(_("This code has expired."), field="code", code="expired_code")
        row = mine.get()
        account = credit_account_get(organization=actor.organization, user=user)
        entry = credit_in(account=account, kind=CreditEntry.Kind.REDEMPTION, amount=row.amount, source=f"code:{row.pk}",
                          reason=row.prefix, actor=user)
        audit_record(organization=actor.organization, actor=user, action="credit.redeem", target=account,
                     data={"code": row.prefix, "amount": str(row.amount)}, ip=ip)
    return entry


def codes_csv(pairs: list[tuple[RedemptionCode, str]], *, currency: str) -> str:
    """The CSV of a batch just generated, codes included (the only time they exist outside the caller)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["code", "amount", "currency", "expires_at", "batch"])
    for row, code in pairs:
        writer.writerow([code, f"{row.amount.normalize():f}", currency, row.expires_at.isoformat(), row.batch])
    return out.getvalue()


def codes_status_csv(codes) -> str:
    """Codes as they stand (redeemed or not), without the codes themselves: those were shown once."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["prefix", "batch", "amount", "expires_at", "redeemed_at", "redeemed_by"])
    for code in codes:
        writer.writerow([code.prefix, code.batch, f"{code.amount.normalize():f}", code.expires_at.isoformat(),
                         code.redeemed_at.isoformat() if code.redeemed_at else "", code.redeemed_by.email if code.redeemed_by else ""])
    return out.getvalue()
