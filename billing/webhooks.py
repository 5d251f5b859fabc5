"""Standard Webhooks v1.0.0 signing for outbound alert webhooks (https://www.standardwebhooks.com/).

Every delivery carries three headers:

- `webhook-id`: the message id, the same on every retry of one delivery (use it to deduplicate);
- `webhook-timestamp`: unix seconds of this attempt;
- `webhook-signature`: `v1,<base64 HMAC-SHA256>` over `f"{id}.{timestamp}.{raw body}"`, keyed with the
  base64-decoded channel secret (after its `whsec_` prefix). While a secret is being rotated the
  header holds two signatures separated by a space, one per secret; either one verifying is enough.

Verifying in a receiver (Python standard library only; any Standard Webhooks library works too):

.. code-block:: python

    import base64, hashlib, hmac, time

    def verify_tollgate_webhook(secret: str, headers: dict, body: bytes, tolerance: int = 300) -> None:
        \"\"\"Raise ValueError unless the request is a genuine, recent Tollgate webhook.

        secret: the channel's "whsec_..." secret; headers: the request headers;
        body: the raw request body, exactly as received (before any JSON parsing).
        \"\"\"
        headers = {k.lower(): v for k, v in headers.items()}
        msg_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not (msg_id and timestamp.isdigit() and signatures):
            raise ValueError("missing webhook headers")
        if abs(time.time() - int(timestamp)) > tolerance:
            raise ValueError("timestamp too old or too new")
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for candidate in signatures.split(" "):
            version, _, signature = candidate.partition(",")
            if version == "v1" and hmac.compare_digest(signature.encode(), expected.encode()):
                return
        raise ValueError("no valid signature")

Answer 2xx quickly; any other status (3xx included) is retried with backoff for 24 hours, after
which the channel is disabled. Answer 410 Gone to disable the channel at once.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE = 300  # seconds, as the reference libraries


class WebhookVerificationError(Exception):
    pass


def new_secret(nbytes: int = 32) -> str:
    """`whsec_` + base64 of `nbytes` random bytes (the spec allows 24 to 64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def new_message_id() -> str:
    """A webhook-id: `msg_` + 32 hex digits (ids must not contain dots: they delimit the signed content)."""
    return "msg_" + secrets.token_hex(16)


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; ValueError unless it decodes to 24–64 bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("A webhook secret starts with whsec_.")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("A webhook secret is whsec_ followed by base64.") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError("A webhook secret holds 24 to 64 random bytes.")
    return key


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """`v1,<base64>`: HMAC-SHA256 over `{msg_id}.{timestamp}.{body}`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_headers(secrets_: list[str], msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers, one signature per non-empty secret (current first)."""
    if "." in msg_id:
        raise ValueError("A webhook-id must not contain dots.")
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    signatures = [sign(s, msg_id, timestamp, body) for s in secrets_ if s]
    if not signatures:
        raise ValueError("A webhook needs a secret to be signed.")
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": " ".join(signatures)}


def verify(secrets_: list[str], headers, body: bytes, *, tolerance: int = DEFAULT_TOLERANCE, now: float | None = None) -> None:
    """Raise WebhookVerificationError unless a v1 signature by one of `secrets_` matches (constant-time)."""
    headers = {k.lower(): v for k, v in dict(headers).items()}
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and timestamp and signatures):
        raise WebhookVerificationError("Missing webhook headers.")
    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise WebhookVerificationError("Invalid webhook-timestamp.") from exc
    now = time.time() if now is None else now
    if sent_at < now - tolerance:
        raise WebhookVerificationError("Message timestamp too old.")
    if sent_at > now + tolerance:
        raise WebhookVerificationError("Message timestamp too new.")
    offered = [value for version, _, value in (c.partition(",") for c in signatures.split(" ")) if version == SIGNATURE_VERSION]
    matched = False
    for secret in filter(None, secrets_):
        expected = sign(secret, msg_id, timestamp, body).partition(",")[2]
        for value in offered:
            matched |= hmac.compare_digest(value.encode(), expected.encode())  # no early exit: constant time
    if not matched:
        raise WebhookVerificationError("No matching signature.")
