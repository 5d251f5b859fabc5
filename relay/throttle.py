"""Throttle clients that keep presenting bad keys: after LIMIT failures within WINDOW seconds an
address is answered 429 without even looking the key up (per process; enough to stop guessing
and to keep a flood of random keys off the database)."""

import time
from collections import deque

from relay.errors import RateLimited

LIMIT = 30
WINDOW = 60.0
MAX_ADDRESSES = 100_000


class FailedKeyThrottle:
    def __init__(self, limit: int = LIMIT, window: float = WINDOW):
        self.limit, self.window = limit, window
        self._failures: dict[str, deque] = {}

    def check(self, address: str) -> None:
        failures = self._failures.get(address)
        if failures is None:
            return
        cutoff = time.monotonic() - self.window
        while failures and failures[0] < cutoff:
            failures.popleft()
        if len(failures) >= self.limit:
            retry = int(failures[0] + self.window - time.monotonic()) + 1
            raise RateLimited(
                "Too many requests with invalid API keys from your address; slow down.",
                headers={"retry-after": str(max(retry, 1))}, code="too_many_invalid_keys",
            )

    def failed(self, address: str) -> None:
        if len(self._failures) >= MAX_ADDRESSES:
            self._failures.clear()
        self._failures.setdefault(address, deque(maxlen=self.limit)).append(time.monotonic())

    def reset(self) -> None:
        self._failures.clear()
