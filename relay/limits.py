"""Per-key RPM and TPM limits over fixed one-minute windows, served from leases (relay.leases)."""

import time

from wire import redis_keys
from wire.errors import RateLimited

WINDOW = 60


def _window() -> tuple[int, int]:
    now = time.time()
    window = int(now // WINDOW)
    reset = int(WINDOW - (now % WINDOW)) + 1
    return window, reset


class RateLimiter:
    def __init__(self, book):
        self.book = book

    async def admit(self, key, tokens: int) -> tuple[list[tuple[bytes, bytes]], str | None]:
        """Admit one request reserving `tokens`; returns (x-ratelimit headers, TPM counter to settle)."""
        if not key.rpm_limit and not key.tpm_limit:
            return [], None
        window, reset = _window()
        headers = []
        if key.rpm_limit:
            counter = redis_keys.rate_counter(key.id, "r", window)
            if not await self.book.take(counter, key.rpm_limit, 1, ttl=WINDOW * 2):
                raise self._limited("requests", key.rpm_limit, reset)
            remaining = int(self.book.remaining_estimate(counter, key.rpm_limit))
            headers += _headers("requests", key.rpm_limit, remaining, reset)
        tpm_counter = None
        if key.tpm_limit:
            tpm_counter = redis_keys.rate_counter(key.id, "t", window)
            amount = min(max(tokens, 1), key.tpm_limit)
            if not await self.book.take(tpm_counter, key.tpm_limit, amount, ttl=WINDOW * 2):
                raise self._limited("tokens", key.tpm_limit, reset)
            remaining = int(self.book.remaining_estimate(tpm_counter, key.tpm_limit))
            headers += _headers("tokens", key.tpm_limit, remaining, reset)
        return headers, tpm_counter

    async def settle(self, tpm_counter: str | None, reserved: int, actual: int) -> None:
        if tpm_counter is not None and actual != reserved:
            await self.book.adjust(tpm_counter, actual - reserved)

    @staticmethod
    def _limited(kind: str, limit: int, reset: int) -> RateLimited:
        return RateLimited(
            f"Rate limit reached: this key allows {limit} {kind} per minute. Retry after {reset} s.",
            headers={"retry-after": str(reset), **{k.decode(): v.decode() for k, v in _headers(kind, limit, 0, reset)}},
        )


_NAMES = {
    kind: (f"x-ratelimit-limit-{kind}".encode(), f"x-ratelimit-remaining-{kind}".encode(), f"x-ratelimit-reset-{kind}".encode())
    for kind in ("requests", "tokens")
}


def _headers(kind: str, limit: int, remaining: int, reset: int) -> list[tuple[bytes, bytes]]:
    limit_name, remaining_name, reset_name = _NAMES[kind]
    return [(limit_name, b"%d" % limit), (remaining_name, b"%d" % remaining), (reset_name, b"%ds" % reset)]
