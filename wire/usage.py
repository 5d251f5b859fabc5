"""The usage record: what one relayed request used and cost, as the relay emits it and the ledger
ingests it. This dataclass is the one declaration of its shape; it travels as JSON (orjson encodes
dataclasses natively), a batch per Redis stream entry (redis_keys.USAGE_STREAM, field "b")."""

import math
from dataclasses import dataclass, field, fields

import orjson

from wire.errors import MalformedUsage

# No request comes near this many tokens in one count (the largest: an embeddings batch of 2048 inputs ×
# 8192 tokens ≈ 17M); far below the ledger's integer columns (2^31 - 1), even as prompt + completion.
MAX_USAGE_TOKENS = 100_000_000


def usage_number(value) -> int:
    """A token count as an upstream reported it, checked for type: absent (None) is 0, an int or a finite
    float is taken (range is the relay's Record.usage's job); anything else (a string, NaN, a bool, an
    object) raises MalformedUsage. Adapters read every usage figure through this before adding figures up."""
    if value is None:
        return 0
    kind = type(value)
    if kind is int:
        return value
    if kind is float and math.isfinite(value):
        return int(value)
    raise MalformedUsage("The upstream reported usage that is not a number.")


@dataclass(slots=True)
class UsageRecord:
    """One request in the ledger's terms. Money travels as decimal strings: exact through JSON."""

    request_id: str
    organization_id: int
    team_id: int | None
    key_id: int
    user_id: int | None
    model_name: str
    deployment_id: int | None
    provider: str
    upstream_model: str
    endpoint: str
    stream: bool
    status_code: int
    error_type: str
    prompt_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    completion_tokens: int
    usage_source: str  # "reported", "estimated" or "missing"
    attempts: int
    latency_ms: int
    ttft_ms: int | None
    created_at: float  # epoch seconds
    cost: str | None  # in `currency`; None: unpriced
    currency: str
    exchange_rate: str | None  # currency -> the organization's
    cost_display: str | None  # in the organization's currency
    price_id: int | None
    attempt_trail: list[dict] = field(default_factory=list)
    downgraded_from: str = ""
    usage_flags: str = ""  # corrections to the upstream's figures, e.g. "negative:prompt"
    credit_account_id: int | None = None  # the credit balance the request was held against
    batch_id: str = ""  # the batch the request was a line of; empty for live traffic
    cache_hit: bool = False  # answered from the response cache: cost 0
    sandbox: bool = False  # answered by a sandbox key's demo model: cost 0
    would_have_cost: str | None = None  # what it would have cost relayed, in the organization's currency
    search_units: int = 0  # rerank: search units billed (wire.adapters.rerank)

    def as_fields(self) -> dict:
        return {name: getattr(self, name) for name in FIELDS}


FIELDS = tuple(f.name for f in fields(UsageRecord))


def encode_batch(records: list) -> bytes:
    return orjson.dumps(records)


def decode_batch(raw: bytes) -> list:
    """A stream entry's records as plain dicts; the ledger checks every value before it trusts one."""
    return orjson.loads(raw)
