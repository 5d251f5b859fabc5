"""Throttle clients that keep presenting bad keys, without ever refusing a good one.

After LIMIT failures within WINDOW seconds, an address's further failures are answered 429 instead
of 401 (per process). The key is always checked first, so a valid key from a throttled address (an
office behind one NAT, everyone behind a load balancer) is served. What the throttle adds for such an
address is a gate: keys this process does not hold in its snapshot cache are looked up one at a time,
so a flood of random keys costs at most one database query at a time per address, while known keys
go straight through. The client's address is the connection's, or the X-Forwarded-For hop a trusted
proxy saw (TOLLGATE_TRUSTED_PROXIES; wire/proxies.py); it is only worked out once an address has
failed recently, so the hot path does not pay for it.
"""

import asyncio
import time
from collections import deque

from django.conf import settings

from wire.errors import RateLimited
from wire.proxies import client_address, parse_networks

LIMIT = 30
WINDOW = 60.0
MAX_ADDRESSES = 100_000


def request_address(scope) -> str:
    peer = (scope.get("client") or (None,))[0]
    networks = parse_networks(tuple(settings.TOLLGATE_TRUSTED_PROXIES))
    if not networks:
        return peer or "unknown"
    forwarded = b",".join(value for name, value in scope["headers"] if name == b"x-forwarded-for")
    return client_address(peer, forwarded.decode("latin-1"), networks)


class FailedKeyThrottle:
    def __init__(self, limit: int = LIMIT, window: float = WINDOW):
        self.limit, self.window = limit, window
        self._failures: dict[str, deque] = {}
        self._gates: dict[str, asyncio.Lock] = {}

    async def lookup(self, scope, key_hash: str, cache):
        """The key's snapshot (None: unknown); through the address's gate while it is throttled."""
        if not self._failures:  # nobody failed lately: no address work at all
            return await cache.key(key_hash)
        address = request_address(scope)
        if not self._retry_after(address):
            self._gates.pop(address, None)
            return await cache.key(key_hash)
        found, key = cache.cached_key(key_hash)
        if found:
            return key
        gate = self._gates.setdefault(address, asyncio.Lock())
        async with gate:
            return await cache.key(key_hash)

    def failed(self, scope) -> None:
        """Count a failure; raises 429 once the address is over the limit (the caller answers 401 otherwise)."""
        address = request_address(scope)
        retry = self._retry_after(address)
        if len(self._failures) >= MAX_ADDRESSES:
            self._failures.clear()
            self._gates = {address: gate for address, gate in self._gates.items() if gate.locked()}
        self._failures.setdefault(address, deque(maxlen=self.limit)).append(time.monotonic())
        if retry:
            raise RateLimited(
                "Too many requests with invalid API keys from your address; slow down.",
                headers={"retry-after": str(retry)}, code="too_many_invalid_keys",
            )

    def _retry_after(self, address: str) -> int:
        """Seconds until the address is under the limit again; 0 when it is (stale entries are dropped)."""
        failures = self._failures.get(address)
        if failures is None:
            return 0
        cutoff = time.monotonic() - self.window
        while failures and failures[0] < cutoff:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return 0
        if len(failures) < self.limit:
            return 0
        return max(int(failures[0] + self.window - time.monotonic()) + 1, 1)

    def reset(self) -> None:
        self._failures.clear()
        self._gates.clear()
