"""Shared counters served from per-process leases, so admission costs no round trip per request.

A process takes a batch ("lease") of units from a shared counter with one atomic script and spends
it locally. The shared counter counts every unit leased, so the total admitted across all processes
never exceeds the limit; the price is that units still leased by idle processes are unusable until
the window ends: at most (lease size - 1) per process. Leases shrink as the counter nears its limit
(to one unit, or one request's worst case, at the end), which keeps that slack small.

`RedisLeaseStore` shares counters between processes; `LocalLeaseStore` is the embedded default.
"""

import asyncio
import logging
import time

from relay.metrics import LEASE_GRANTS

log = logging.getLogger(__name__)


class MissingCounter(Exception):
    """A counter that should hold history is gone (e.g. Redis restarted): rebuild it, then retry."""

# KEYS[1] counter; ARGV: limit, wanted, minimum, ttl, must_exist. Grants min(wanted, room) if room >= minimum.
# A counter that must exist but does not (Redis lost it) answers -1 so the caller rebuilds it.
LEASE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current and ARGV[5] == '1' then return {-1, 0} end
local used = tonumber(current or '0')
local room = tonumber(ARGV[1]) - used
local grant = math.min(tonumber(ARGV[2]), room)
if grant < tonumber(ARGV[3]) or grant <= 0 then return {0, used} end
used = redis.call('INCRBYFLOAT', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {tostring(grant), tostring(used)}
"""


# KEYS[1] counter; ARGV: amount, ttl, must_exist. Adds to the counter; one that must exist but does
# not (Redis lost it) is left alone: it will be rebuilt from the ledger.
ADD_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[3] == '1' then return 0 end
  redis.call('SET', KEYS[1], 0, 'EX', ARGV[2])
end
redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
return 1
"""


class LocalLeaseStore:
    """One process holds the whole counter: a lease is the exact remaining room."""

    def __init__(self):
        self._used: dict[str, float] = {}
        self._expiry: dict[str, float] = {}

    async def grant(self, counter: str, limit: float, wanted: float, minimum: float, ttl: int, must_exist: bool = False) -> tuple[float, float]:
        now = time.monotonic()
        if self._expiry.get(counter, now + 1) <= now:
            self._used.pop(counter, None)
        if must_exist and counter not in self._used:
            raise MissingCounter(counter)
        used = self._used.get(counter, 0.0)
        grant = min(wanted, limit - used)
        if grant <= 0 or grant < minimum:
            return 0.0, used
        self._used[counter] = used + grant
        self._expiry[counter] = now + ttl
        if len(self._expiry) > 100_000:  # forget expired windows
            for name in [n for n, t in self._expiry.items() if t <= now]:
                self._used.pop(name, None)
                self._expiry.pop(name, None)
        return grant, used + grant

    async def give_back(self, counter: str, amount: float) -> None:
        if counter in self._used:
            self._used[counter] = max(0.0, self._used[counter] - amount)

    async def exists(self, counter: str) -> bool:
        return counter in self._used

    async def initialise(self, counter: str, value: float, ttl: int) -> None:
        self._used.setdefault(counter, float(value))
        self._expiry.setdefault(counter, time.monotonic() + ttl)

    def clear(self) -> None:
        self._used.clear()
        self._expiry.clear()


class RedisLeaseStore:
    def __init__(self, redis):
        self._redis = redis
        self._script = redis.register_script(LEASE_SCRIPT)
        self._add = redis.register_script(ADD_SCRIPT)

    async def grant(self, counter: str, limit: float, wanted: float, minimum: float, ttl: int, must_exist: bool = False) -> tuple[float, float]:
        granted, used = await self._script(keys=[counter], args=[limit, wanted, minimum, ttl, "1" if must_exist else "0"])
        if float(granted) < 0:
            raise MissingCounter(counter)
        return float(granted), float(used)

    async def give_back(self, counter: str, amount: float) -> None:
        await self._redis.incrbyfloat(counter, -amount)

    async def exists(self, counter: str) -> bool:
        return bool(await self._redis.exists(counter))

    async def initialise(self, counter: str, value: float, ttl: int) -> None:
        await self._redis.set(counter, value, nx=True, ex=ttl)

    async def add(self, counter: str, amount: float, ttl: int, must_exist: bool) -> None:
        await self._add(keys=[counter], args=[amount, ttl, "1" if must_exist else "0"])


class Lease:
    __slots__ = ("counter", "available", "used", "lock")

    def __init__(self, counter: str):
        self.counter = counter
        self.available = 0.0
        self.used = 0.0  # shared counter value seen at the last grant
        self.lock = asyncio.Lock()


class LeaseBook:
    """Per-process leases over a store. `take` admits `amount` or returns False."""

    def __init__(self, store, *, fraction: float = 1 / 20, max_leases: int = 100_000):
        self.store = store
        self.fraction = fraction  # a lease is at most this share of the limit...
        self._leases: dict[str, Lease] = {}
        self._max = max_leases

    def _lease(self, counter: str) -> Lease:
        lease = self._leases.get(counter)
        if lease is None:
            if len(self._leases) >= self._max:
                self._leases.clear()
            lease = self._leases[counter] = Lease(counter)
        return lease

    async def take(self, counter: str, limit: float, amount: float, *, ttl: int, must_exist: bool = False) -> bool:
        lease = self._lease(counter)
        if lease.available >= amount:
            lease.available -= amount
            return True
        async with lease.lock:
            if lease.available >= amount:
                lease.available -= amount
                return True
            need = amount - lease.available
            room = max(limit - lease.used, 0)
            # ...and at most an eighth of what seemed left, so the final units are spread thin.
            wanted = max(need, min(limit * self.fraction, room / 8))
            granted, used = await self.store.grant(counter, limit, wanted, need, ttl, must_exist)
            LEASE_GRANTS.inc()
            lease.used = used
            if granted <= 0:
                return False
            lease.available += granted - amount
            return True

    async def adjust(self, counter: str, delta: float) -> None:
        """Settle a reservation: spend `delta` more (or give back when negative) from the lease."""
        lease = self._leases.get(counter)
        if lease is None:
            return
        lease.available -= delta  # may go negative: a debt the next lease pays first

    def last_seen(self, counter: str) -> float:
        """The shared counter's value at this process's last grant (0 if it never had one)."""
        lease = self._leases.get(counter)
        return lease.used if lease else 0.0

    def spent_estimate(self, counter: str) -> float:
        """The shared counter as last seen, minus what this process holds unspent."""
        lease = self._leases.get(counter)
        return lease.used - lease.available if lease else 0.0

    def remaining_estimate(self, counter: str, limit: float) -> float:
        lease = self._leases.get(counter)
        if lease is None:
            return limit
        return max(0.0, limit - lease.used + lease.available)

    def clear(self) -> None:
        """Forget every lease, as a new process starts (units leased and unspent stay counted as used)."""
        self._leases.clear()


class FailoverLeaseStore:
    """Redis first; while Redis fails, this process's own counters (README: fail-open table).

    During an outage each process enforces the full limit on its own, so the bound becomes
    (processes x limit); the shared counters resume when Redis answers again. The local counters
    start empty at each outage (budget counters are then rebuilt from the ledger, see
    relay.budgets), and what they granted is added to the shared counters when Redis is back,
    before any new grant, so spend during the outage is not granted a second time.
    """

    def __init__(self, primary, fallback, *, timeout: float = 0.5, retry_after: float = 5.0):
        self.primary, self.fallback = primary, fallback
        self.timeout, self.retry_after = timeout, retry_after
        self._down_until = 0.0
        self._degraded = False
        self._outage: dict[str, tuple[float, int, bool]] = {}  # granted locally: counter -> (amount, ttl, must_exist)

    def _went_down(self, exc: Exception) -> None:
        if not self._degraded:
            log.warning("lease store unavailable (%s); using local counters", exc.__class__.__name__)
            self._degraded = True
            self.fallback.clear()  # counters left from an earlier outage or rebuild are stale
        self._down_until = time.monotonic() + self.retry_after

    async def _recover(self) -> None:
        """Redis answers again: add what was granted locally meanwhile to the shared counters."""
        while self._outage:
            counter, (amount, ttl, must_exist) = self._outage.popitem()
            try:
                await self.primary.add(counter, amount, ttl, must_exist)
            except BaseException:
                self._granted_locally(counter, amount, ttl, must_exist)
                raise
        self._degraded = False
        log.warning("lease store available again; shared counters resumed")

    def _granted_locally(self, counter: str, amount: float, ttl: int, must_exist: bool) -> None:
        previous = self._outage.get(counter, (0.0, ttl, must_exist))[0]
        self._outage[counter] = (previous + amount, ttl, must_exist)

    async def grant(self, counter, limit, wanted, minimum, ttl, must_exist=False):
        if time.monotonic() >= self._down_until:
            try:
                if self._degraded:
                    await asyncio.wait_for(self._recover(), self.timeout)
                return await asyncio.wait_for(self.primary.grant(counter, limit, wanted, minimum, ttl, must_exist), self.timeout)
            except MissingCounter:
                raise
            except Exception as exc:
                self._went_down(exc)
        granted, used = await self.fallback.grant(counter, limit, wanted, minimum, ttl, must_exist)
        if granted > 0:
            self._granted_locally(counter, granted, ttl, must_exist)
        return granted, used

    async def give_back(self, counter, amount):
        try:
            await asyncio.wait_for(self.primary.give_back(counter, amount), self.timeout)
        except Exception:
            await self.fallback.give_back(counter, amount)

    async def exists(self, counter):
        if time.monotonic() >= self._down_until:
            try:
                return await asyncio.wait_for(self.primary.exists(counter), self.timeout)
            except Exception as exc:
                self._went_down(exc)
        return await self.fallback.exists(counter)

    async def initialise(self, counter, value, ttl):
        if time.monotonic() >= self._down_until:
            try:
                await asyncio.wait_for(self.primary.initialise(counter, value, ttl), self.timeout)
            except Exception as exc:
                self._went_down(exc)
        await self.fallback.initialise(counter, value, ttl)
