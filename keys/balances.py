"""Account balance polling where the provider exposes it (DeepSeek, Moonshot/Kimi, SiliconFlow, OpenRouter).

DeepSeek: `GET https://api.deepseek.com/user/balance` (the base URL without its /v1) answers
`balance_infos[].total_balance` per currency. Moonshot: `GET {base}/users/me/balance` answers
`data.available_balance`, in CNY on api.moonshot.cn and USD on api.moonshot.ai. SiliconFlow:
`GET {base}/user/info` answers `data.totalBalance` (a string; gift `balance` plus paid
`chargeBalance`), CNY on api.siliconflow.cn and USD on api.siliconflow.com (reported retired on the
China site in August 2026: a refusal there is recorded as the check's error). OpenRouter:
`GET {base}/credits` answers `data.total_credits` and `data.total_usage` in USD; what is left is
their difference (OpenRouter asks for a management key there; an inference key's refusal is shown
as the error). Amounts are parsed
as Decimal straight from the JSON text. The periodic run and the low-balance alert live in billing
(billing.tasks), which may import keys; this module writes only the credential's balance fields.
"""

import json
import logging
from decimal import Decimal, InvalidOperation

from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from keys import egress
from keys.models import ProviderCredential
from keys.testing import _redact, _target

log = logging.getLogger(__name__)

BALANCE_TIMEOUT_SECONDS = 15.0
MAX_BALANCE_BYTES = 64 * 1024


def _deepseek_url(base: str) -> str:
    return base.removesuffix("/v1") + "/user/balance"


def _moonshot_url(base: str) -> str:
    return base + "/users/me/balance"


def _amount(value) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError("not an amount") from exc
    if not amount.is_finite():
        raise ValueError("not an amount")
    return amount


def _deepseek_parse(data) -> tuple[Decimal, str]:
    infos = data.get("balance_infos") if isinstance(data, dict) else None
    if not isinstance(infos, list) or not infos or not isinstance(infos[0], dict):
        raise ValueError("no balance_infos")
    return _amount(infos[0].get("total_balance")), str(infos[0].get("currency") or "")[:8]


def _moonshot_parse(currency: str):
    def parse(data) -> tuple[Decimal, str]:
        inner = data.get("data") if isinstance(data, dict) else None
        if not isinstance(inner, dict):
            raise ValueError("no data")
        return _amount(inner.get("available_balance")), currency

    return parse


def _siliconflow_url(base: str) -> str:
    return base + "/user/info"


def _siliconflow_parse(currency: str):
    def parse(data) -> tuple[Decimal, str]:
        inner = data.get("data") if isinstance(data, dict) else None
        if not isinstance(inner, dict):
            raise ValueError("no data")
        return _amount(inner.get("totalBalance")), currency

    return parse


def _openrouter_url(base: str) -> str:
    return base + "/credits"


def _openrouter_parse(data) -> tuple[Decimal, str]:
    inner = data.get("data") if isinstance(data, dict) else None
    if not isinstance(inner, dict):
        raise ValueError("no data")
    return _amount(inner.get("total_credits")) - _amount(inner.get("total_usage")), "USD"


# provider slug -> (balance URL from the base URL, parser of the JSON answer)
READERS = {
    "deepseek": (_deepseek_url, _deepseek_parse),
    "moonshot-cn": (_moonshot_url, _moonshot_parse("CNY")),
    "moonshot-ai": (_moonshot_url, _moonshot_parse("USD")),
    "siliconflow-cn": (_siliconflow_url, _siliconflow_parse("CNY")),
    "siliconflow-com": (_siliconflow_url, _siliconflow_parse("USD")),
    "openrouter": (_openrouter_url, _openrouter_parse),
}


def balance_supported(credential: ProviderCredential) -> bool:
    return credential.provider in READERS


def balance_read(credential: ProviderCredential) -> tuple[Decimal, str]:
    """(amount, currency) from the provider; ApplicationError with a key-free message on failure."""
    url_for, parse = READERS[credential.provider]
    try:
        target = _target(credential, "balance")
    except ValueError as exc:
        raise ApplicationError(_("The stored key cannot be decrypted with the configured encryption keys.")) from exc
    headers = {"Authorization": f"Bearer {target.api_key}", "Accept": "application/json", **target.extra_headers}
    try:
        response = egress.fetch(
            "GET", url_for(target.base_url.rstrip("/")), headers=headers, timeout=BALANCE_TIMEOUT_SECONDS, max_body=MAX_BALANCE_BYTES
        )
    except (egress.EgressRefused, egress.EgressFailed) as exc:
        raise ApplicationError(_redact(exc.message, target)) from exc
    if not 200 <= response.status_code < 300:
        detail = _redact(response.body[:200].decode("utf-8", "replace"), target)
        raise ApplicationError(_redact(_("The provider refused the balance query (HTTP %(status)d): %(message)s") % {
            "status": response.status_code, "message": detail,
        }, target))
    try:
        return parse(json.loads(response.body, parse_float=Decimal))
    except ValueError as exc:
        raise ApplicationError(_("The provider's balance answer was not understood.")) from exc


def balance_check(*, credential: ProviderCredential) -> ProviderCredential:
    """Read and record the credential's balance; a failure keeps the last amount and records the error."""
    now = timezone.now()
    try:
        amount, currency = balance_read(credential)
    except ApplicationError as exc:
        credential.balance_error = str(exc.message)[:300]
        credential.balance_checked_at = now
        credential.save(update_fields=["balance_error", "balance_checked_at"])
        return credential
    credential.balance, credential.balance_currency = amount, currency
    credential.balance_checked_at, credential.balance_error = now, ""
    credential.save(update_fields=["balance", "balance_currency", "balance_checked_at", "balance_error"])
    return credential


def balances_check_all() -> list[ProviderCredential]:
    """Check every credential whose provider has a balance endpoint; the checked credentials."""
    checked = []
    for credential in ProviderCredential.objects.filter(provider__in=list(READERS)).iterator():
        try:
            checked.append(balance_check(credential=credential))
        except Exception as exc:  # one broken credential must not stop the others
            log.warning("balance check of credential %s failed: %s", credential.pk, exc.__class__.__name__)
    return checked


def balance_is_low(credential: ProviderCredential) -> bool:
    return (
        credential.low_balance_threshold is not None and credential.balance is not None and not credential.balance_error
        and credential.balance < credential.low_balance_threshold
    )
