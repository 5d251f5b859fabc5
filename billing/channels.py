"""One small sender per alert channel kind, registered in SENDERS (kind -> sender).

A sender takes (channel, alert, delivery), makes one attempt and returns an Outcome; it never
raises for an expected failure and never puts a secret (channel secret, bot token in the URL)
into the Outcome. HTTP goes through keys.egress, the one client for user-supplied URLs.
Formats and signing: ../shared/PROVIDERS.md section 6.
"""

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Callable, NamedTuple
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import get_connection, send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.translation import gettext as _, gettext_lazy as _lazy

from billing import webhooks
from billing.models import Alert, AlertChannel, AlertDelivery
from billing.money import Money
from keys import egress
from keys.encryption import decrypt

TIMEOUT = 15  # seconds per attempt (Standard Webhooks suggests 15-30)
WECOM_MARKDOWN_BYTES = 4096
# Bot replies that mean "throttled": retry after the bot's penalty instead of the normal backoff.
BOT_THROTTLE_SECONDS = {("dingtalk", 130101): 600, ("feishu", 11232): 60}


class Outcome(NamedTuple):
    ok: bool
    status_code: int | None = None
    error: str = ""
    retry_after: float | None = None  # seconds, when the destination asked (429/503 Retry-After, bot throttling)


class Message(NamedTuple):
    title: str
    lines: list[tuple[str, str]]  # (label, value); label "" for a plain sentence
    link: str
    severity: str  # "critical", "warning" or "info"


# --- Message text --------------------------------------------------------------------------------
# Rendered in the organization's language (Organization.language): `alerts._send` wraps every sender in
# `translation.override`, so the strings below are looked up when a message is built, never at import.

SCOPES = {"org": _lazy("Organization"), "team": _lazy("Team"), "key": _lazy("Virtual key"), "user": _lazy("User")}
PERIODS = {"day": _lazy("Daily"), "week": _lazy("Weekly"), "month": _lazy("Monthly"), "total": _lazy("Total (no reset)")}


def _money(value, currency: str) -> str:
    """By magnitude (billing.money.Money): 2 decimals from 1 up, up to 6 below, so a small budget is not "0.00 of 0.00"."""
    try:
        return str(Money(Decimal(str(value)), currency))
    except (InvalidOperation, ValueError, TypeError):
        return str(value)


def _date(iso: str, tz: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d")
    except (TypeError, ValueError, KeyError):
        return str(iso)


def alert_message(alert: Alert, channel: AlertChannel) -> Message:
    """The human-readable content of an alert, shared by every channel kind, in the active language."""
    p, org = alert.payload, alert.organization
    link = settings.TOLLGATE_PUBLIC_URL.rstrip("/") + "/"
    if alert.kind in ("budget.threshold", "budget.forecast"):
        name, currency = p.get("budget", "budget"), p.get("currency", org.currency)
        spent = _("%(spent)s of %(amount)s (%(percent)s%%)") % {
            "spent": _money(p.get("spent"), currency), "amount": _money(p.get("amount"), currency), "percent": p.get("percent"),
        }
        period = _("%(period)s, since %(start)s") % {
            "period": PERIODS.get(p.get("period"), p.get("period")), "start": _date(p.get("period_start"), org.time_zone),
        }
        lines = [
            (_("Scope"), str(SCOPES.get(p.get("scope"), p.get("scope", "")))),
            (_("Spent"), spent),
            (_("Period"), period),
            (_("Limit"), _("hard: requests are refused once it is spent") if p.get("hard") else _("soft: alerts only")),
        ]
        if alert.kind == "budget.forecast":
            runs_out = _date(p.get("runs_out_at"), org.time_zone)
            title = _("Budget “%(name)s” will run out on %(date)s") % {"name": name, "date": runs_out}
            lines.append((_("Forecast"), _("at the current pace the budget runs out on %(date)s, before the period ends") % {"date": runs_out}))
            severity = "warning"
        else:
            title = _("Budget “%(name)s” reached %(threshold)s%%") % {"name": name, "threshold": p.get("threshold")}
            severity = "critical" if int(p.get("threshold") or 0) >= 100 else "warning"
    elif alert.kind in ("price.missing", "price.cache_write_missing"):
        title = _("Requests were served without a price") if alert.kind == "price.missing" else _("Cache writes were charged at the input price")
        lines = [(_("Provider"), str(p.get("provider", ""))), (_("Model"), str(p.get("upstream_model", ""))), ("", str(p.get("message", "")))]
        severity = "warning"
    elif alert.kind == "rate.missing":
        title = _("Requests were priced in a currency without an exchange rate")
        lines = [(_("Currency"), f"{p.get('currency', '')} → {p.get('org_currency', org.currency)}"), ("", str(p.get("message", "")))]
        severity = "warning"
    elif alert.kind == "credit.low":
        currency = p.get("currency", org.currency)
        title = _("The credit balance of %(account)s is low") % {"account": p.get("account", "")}
        lines = [(_("Balance"), _money(p.get("balance"), currency)), (_("Alert below"), _money(p.get("threshold"), currency)),
                 ("", _("Redeem a code or top the balance up on the Credits page."))]
        severity = "warning"
    elif alert.kind == "credential.rejected":
        title = f"The provider rejected the credential “{p.get('credential', '')}”"
        lines = [("Provider", str(p.get("provider", ""))), ("Model", str(p.get("model", ""))),
                 ("Status", str(p.get("status", ""))), ("", str(p.get("message", "")))]
        severity = "critical"
    elif alert.kind == "test":
        title = _("Test alert")
        lines = [("", _("This is a test alert for the channel “%(name)s”. If you can read it, the channel works.") % {"name": channel.name})]
        severity = "info"
    else:
        title = _("Alert: %(kind)s") % {"kind": alert.kind}
        lines = [(str(k), str(v)) for k, v in p.items() if isinstance(v, (str, int, float, bool))]
        severity = "warning"
    return Message(_("Tollgate · %(org)s: %(title)s") % {"org": org.name, "title": title}, lines, link, severity)


def _open_link_text() -> str:
    return _("Open Tollgate")


def _plain_lines(message: Message) -> str:
    return "\n".join(_("%(label)s: %(value)s") % {"label": label, "value": value} if label else value for label, value in message.lines)


def _plain(message: Message) -> str:
    return f"{message.title}\n\n{_plain_lines(message)}\n\n{_open_link_text()}: {message.link}\n"


def _md_safe(text: str) -> str:
    # Names are user-chosen: no tags (Feishu <at user_id="all">, WeCom <font>) may ride in on them.
    return text.replace("<", "‹").replace(">", "›")


def _markdown_lines(message: Message) -> list[str]:
    return [_("**%(label)s:** %(value)s") % {"label": _md_safe(label), "value": _md_safe(value)} if label else _md_safe(value)
            for label, value in message.lines]


# --- HTTP helpers --------------------------------------------------------------------------------


def _retry_after(response: egress.EgressResponse) -> float | None:
    if response.status_code not in (429, 503) or "retry-after" not in response.headers:
        return None
    value = response.headers["retry-after"].strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _post(url: str, body: bytes, headers: dict | None = None) -> egress.EgressResponse:
    return egress.fetch("POST", url, content=body, headers={"Content-Type": "application/json", **(headers or {})}, timeout=TIMEOUT)


def _json(data: dict) -> bytes:
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":")).encode()


def _bot_outcome(kind: str, response: egress.EgressResponse, code_field: str, message_field: str) -> Outcome:
    """Bots answer HTTP 200 with their own error code: success only when that code is 0."""
    if not 200 <= response.status_code < 300:
        return Outcome(False, response.status_code, f"HTTP {response.status_code}", _retry_after(response))
    try:
        reply = json.loads(response.body)
        code = reply.get(code_field)
    except (ValueError, AttributeError):
        return Outcome(False, response.status_code, f"{kind}: the reply is not JSON")
    if code == 0:
        return Outcome(True, response.status_code)
    detail = str(reply.get(message_field, ""))[:120]
    return Outcome(False, response.status_code, f"{kind} error {code}: {detail}", BOT_THROTTLE_SECONDS.get((kind, code)))


def _secret(channel: AlertChannel) -> str:
    return decrypt(channel.secret_encrypted)


# --- Senders -------------------------------------------------------------------------------------


def send_email(channel: AlertChannel, alert: Alert, delivery: AlertDelivery) -> Outcome:
    message = alert_message(alert, channel)
    recipients = [address.strip() for address in channel.target.split(",") if address.strip()]
    send_mail(
        subject=message.title, message=_plain(message), from_email=None, recipient_list=recipients,
        connection=get_connection(fail_silently=False, timeout=TIMEOUT),
    )
    return Outcome(True)


def send_webhook(channel: AlertChannel, alert: Alert, delivery: AlertDelivery) -> Outcome:
    """Standard Webhooks: same body and webhook-id on every retry, signed by current and previous secret."""
    # `summary`: the alert as a sentence in the organization's language, for receivers that just forward text.
    message = alert_message(alert, channel)
    summary = f"{message.title}\n{_plain_lines(message)}"
    body = _json({"type": alert.kind, "timestamp": alert.created_at.isoformat(), "summary": summary, "data": alert.payload})
    secrets_ = [_secret(channel), decrypt(channel.previous_secret_encrypted)]
    response = _post(channel.url(), body, webhooks.signature_headers(secrets_, delivery.message_id, body))
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code)
    return Outcome(False, response.status_code, f"HTTP {response.status_code}", _retry_after(response))


def feishu_sign(secret: str, timestamp: int) -> str:
    # Feishu's quirk: f"{timestamp}\n{secret}" is the HMAC *key*, the message is empty.
    return base64.b64encode(hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()


FEISHU_TEMPLATES = {"critical": "red", "warning": "orange", "info": "blue"}


def send_feishu(channel: AlertChannel, alert: Alert, delivery: AlertDelivery) -> Outcome:
    message = alert_message(alert, channel)
    card = {
        "config": {"wide_screen_mode": True},
        "header": {"title": {"tag": "plain_text", "content": message.title}, "template": FEISHU_TEMPLATES[message.severity]},
        "elements": [
            {"tag": "div", "text": {"tag": "lark_md", "content": "\n".join(_markdown_lines(message))}},
            {"tag": "hr"},
            {"tag": "note", "elements": [{"tag": "lark_md", "content": f"[{_open_link_text()}]({message.link})"}]},
        ],
    }
    data = {"msg_type": "interactive", "card": card}
    if secret := _secret(channel):
        timestamp = int(time.time())
        data = {"timestamp": str(timestamp), "sign": feishu_sign(secret, timestamp), **data}
    return _bot_outcome("feishu", _post(channel.url(), _json(data)), "code", "msg")


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """URL-encoded base64 HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def send_dingtalk(channel: AlertChannel, alert: Alert, delivery: AlertDelivery) -> Outcome:
    message = alert_message(alert, channel)
    text = "\n\n".join([f"#### {_md_safe(message.title)}", *_markdown_lines(message), f"[{_open_link_text()}]({message.link})"])
    data = {"msgtype": "markdown", "markdown": {"title": message.title, "text": text}, "at": {"isAtAll": False}}
    url = channel.url()
    if secret := _secret(channel):
        timestamp_ms = int(time.time() * 1000)
        url += ("&" if "?" in url else "?") + f"timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"
    return _bot_outcome("dingtalk", _post(url, _json(data)), "errcode", "errmsg")


def send_wecom(channel: AlertChannel, alert: Alert, delivery: AlertDelivery) -> Outcome:
    message = alert_message(alert, channel)
    lines = [f"**{_md_safe(message.title)}**", *(f"> {line}" for line in _markdown_lines(message)), f"[{_open_link_text()}]({message.link})"]
    content = "\n".join(lines)
    content = content.encode()[:WECOM_MARKDOWN_BYTES].decode(errors="ignore")
    data = {"msgtype": "markdown", "markdown": {"content": content}}
    return _bot_outcome("wecom", _post(channel.url(), _json(data)), "errcode", "errmsg")


Sender = Callable[[AlertChannel, Alert, AlertDelivery], Outcome]

SENDERS: dict[str, Sender] = {
    AlertChannel.Kind.EMAIL: send_email,
    AlertChannel.Kind.WEBHOOK: send_webhook,
    AlertChannel.Kind.FEISHU: send_feishu,
    AlertChannel.Kind.DINGTALK: send_dingtalk,
    AlertChannel.Kind.WECOM: send_wecom,
}
