"""Every Redis key Tollgate uses, in one place and under one prefix, so the relay and the control plane
name the same thing the same way and an operator can find them all with `SCAN MATCH tollgate:*`."""

PREFIX = "tollgate:"

USAGE_STREAM = PREFIX + "usage"  # usage records, relay -> ledger
USAGE_GROUP = "ledger"  # the stream's consumer group
DRAIN_LOCK = PREFIX + "drain-lock"
DEAD_LETTER_ALERT = PREFIX + "usage-dead-letter-alert"  # at most one operator email an hour
CONFIG_VERSION = PREFIX + "config:version"  # bumped on every configuration change the relay snapshots
COOLDOWNS = PREFIX + "cooldowns"  # hash: deployment id -> cooled until (epoch)
PROBE_COOLDOWNS = PREFIX + "probe-cooldowns"  # the cooldowns a failed probe set (keys.health), which a passing probe lifts


def budget_counter(budget_id: int, period_start: int) -> str:
    """Micros spent and reserved against one budget in one period."""
    return f"{PREFIX}b:{budget_id}:{period_start}"


def credit_counter(account_id: int) -> str:
    """Micros spent and reserved against one credit account (no period: a balance, not a budget)."""
    return f"{PREFIX}c:{account_id}"


def rate_counter(key_id: int, kind: str, window: int) -> str:
    """Requests ("r") or tokens ("t") of one key in one minute window."""
    return f"{PREFIX}rl:{key_id}:{kind}:{window}"


def failure_counter(deployment_id: int, window: int) -> str:
    return f"{PREFIX}fail:{deployment_id}:{window}"


def idempotency(key_id: int, header: str) -> str:
    return f"{PREFIX}idem:{key_id}:{header}"


def response_cache(organization_id: int, fingerprint: str) -> str:
    """One cached answer (README "Response cache"): the organization's id is part of the name, so an
    entry is never shared across organizations."""
    return f"{PREFIX}rc:{organization_id}:{fingerprint}"
