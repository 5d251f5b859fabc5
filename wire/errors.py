"""Relay errors, always rendered as OpenAI's envelope {"error": {message, type, param, code}}."""

import json
import math
import re

import orjson


class RelayError(Exception):
    status = 500
    type = "api_error"
    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}
        if code is not None:
            self.code = code

    def body(self) -> bytes:
        return orjson.dumps({"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}})


class InvalidRequest(RelayError):
    status, type, code = 400, "invalid_request_error", "invalid_request_error"


class InvalidApiKey(RelayError):
    status, type, code = 401, "invalid_request_error", "invalid_api_key"


class ModelNotAllowed(RelayError):
    status, type, code = 403, "invalid_request_error", "model_not_allowed"


class NotFound(RelayError):
    status, type, code = 404, "invalid_request_error", "not_found"


class ModelNotFound(RelayError):
    status, type, code = 404, "invalid_request_error", "model_not_found"


class MethodNotAllowed(RelayError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"


class RequestTooLarge(RelayError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class RateLimited(RelayError):
    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"


class BudgetExceeded(RelayError):
    status, type, code = 429, "insufficient_quota", "budget_exceeded"


class CreditExhausted(RelayError):
    """The credit balance the key draws from cannot hold this request's worst case (relay.credits)."""

    status, type, code = 402, "insufficient_quota", "insufficient_quota"


class BudgetUnenforceable(RelayError):
    """A hard budget holds the request but its cost cannot be known (no price, or no exchange rate)."""

    status, type, code = 403, "invalid_request_error", "price_missing"


class Unavailable(RelayError):
    status, type, code = 503, "api_error", "service_unavailable"


class UpstreamError(RelayError):
    """The upstream failed. `retryable` tells routing whether another attempt may help."""

    status, type, code = 502, "api_error", "upstream_error"

    def __init__(self, message: str, *, upstream_status: int | None = None, retryable: bool = True, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.upstream_status = upstream_status
        self.retryable = retryable
        self.retry_after = retry_after


class MalformedUsage(UpstreamError):
    """The upstream's answer could not be read: bad JSON, a body that is not what its status says, or a
    `usage` that fails validation. Not retried (the same upstream would answer the same way); what was
    delivered is billed as an estimate."""

    code = "upstream_malformed"

    def __init__(self, message: str = "The upstream sent a malformed answer.", **kwargs):
        kwargs.setdefault("retryable", False)
        super().__init__(message, **kwargs)


class UpstreamCredentialRejected(UpstreamError):
    """The provider refused the gateway's credential (401/403): an operator problem, never retried on
    the same credential; the deployment cools down and the organization's admins are told once a day."""

    code = "upstream_auth_error"

    def __init__(self, message: str = "The upstream provider rejected the gateway's credentials.", **kwargs):
        kwargs.setdefault("retryable", False)
        super().__init__(message, **kwargs)


class UpstreamTimeout(UpstreamError):
    status, type, code = 504, "api_error", "upstream_timeout"


class UpstreamRejected(UpstreamError):
    """The upstream refused the request itself (400/404/413/422...): passed on with its status, not retried."""

    type, code = "invalid_request_error", "upstream_invalid_request"

    def __init__(self, message: str, *, status: int = 400, **kwargs):
        kwargs.setdefault("retryable", False)
        super().__init__(message, **kwargs)
        self.status = status


class UpstreamRateLimited(UpstreamError):
    status, type, code = 429, "rate_limit_error", "upstream_rate_limited"

    def __init__(self, message: str, **kwargs):
        super().__init__(message, **kwargs)
        if self.retry_after is not None:  # pass the provider's wait on, in whole seconds (SDKs honour it)
            self.headers.setdefault("retry-after", str(max(1, math.ceil(self.retry_after))))


# Key-like tokens (sk-…, Baidu bce-v3/…, Google AIza…, any long opaque run) and URLs, which may
# name internal hosts.
_SECRET_PATTERN = re.compile(
    r"(sk-[A-Za-z0-9_\-]{6,}|bce-v3/[^\s\"']+|AIza[0-9A-Za-z_\-]{10,}|[A-Za-z0-9_\-]{32,}|[a-z][a-z0-9+.\-]*://[^\s\"']+)"
)


def sanitize_upstream_message(text: str, limit: int = 300) -> str:
    """An upstream's error text made safe to show a client: no keys, no URLs, bounded in length."""
    return _SECRET_PATTERN.sub("[redacted]", str(text))[:limit]


# Values shorter than this are not redacted one by one (they would blank ordinary words); the pattern
# above still catches key-shaped ones.
MIN_REDACTED_LENGTH = 8


def target_secrets(target) -> list[str]:
    """What a deployment sends upstream that no caller may read back: its key and extra header values."""
    return [target.api_key, *(target.extra_headers or {}).values()]


def redact_secrets(text, secrets):
    """`text` (str or bytes) with every secret, also as escaped inside JSON, replaced by [redacted].

    Upstreams quote what they were sent ("Incorrect API key provided: …", a header echoed back); the
    pattern of sanitize_upstream_message only knows key-shaped tokens, so the credential's own values are
    removed first, before any truncation could cut one in half.
    """
    as_bytes = isinstance(text, bytes)
    for secret in secrets:
        if not secret or len(secret) < MIN_REDACTED_LENGTH:
            continue
        for form in dict.fromkeys((secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1])):
            if as_bytes:
                text = text.replace(form.encode(), b"[redacted]")
            else:
                text = text.replace(form, "[redacted]")
    return text
