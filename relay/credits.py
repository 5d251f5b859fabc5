"""Credit admission: hold a request's worst-case cost against the balance its key draws from.

A balance is a budget-like counter with no period: the counter counts micro-units spent (and leased)
by the account's requests, its limit is what the account was funded with (the key snapshot's
`credit.funded_micros`, reloaded on every top-up, grant, deduction or expiry). Leases, settlement and
the overspend bound are the budgets' (relay.leases, relay.budgets; README "Credits"), so admission
costs no round trip per request. A missing counter is rebuilt from the credit ledger by billing's
one counter repair (billing.counters).
"""

from relay import control
from relay.budgets import _amount
from relay.db import run_db
from relay.leases import MissingCounter
from wire.errors import CreditExhausted
from wire.redis_keys import credit_counter

TTL = 400 * 86400  # a balance has no period: the counter lives as long as it is used, rebuilt if lost
TOP_UP_HINT = "Redeem a code or ask an admin for a top-up in the dashboard (Credits)."


class CreditGate:
    def __init__(self, book, store):
        self.book = book
        self.store = store

    async def reserve(self, key, micros: int) -> str | None:
        """Hold `micros` (at least one micro-unit, so an empty balance refuses even a free request) on
        the key's balance; returns the counter held, None without a balance, or raises CreditExhausted."""
        credit = key.credit
        if credit is None:
            return None
        counter = credit_counter(credit.id)
        micros = max(micros, 1)
        for attempt in range(3):  # the store may lose the counter again (Redis failing over meanwhile)
            try:
                admitted = await self.book.take(counter, credit.funded_micros, micros, ttl=TTL, must_exist=True)
                break
            except MissingCounter:
                if attempt == 2:
                    raise
                await self._rebuild(counter, credit.id)
        if not admitted:
            raise CreditExhausted(_refusal(micros, self.book.remaining_estimate(counter, credit.funded_micros), key.currency), param=credit.scope)
        return counter

    async def release(self, counter: str | None, reserved: int) -> None:
        """Give a reservation back unused (a budget refused the request after the credit held it)."""
        if counter is not None:
            await self.book.adjust(counter, -max(reserved, 1))

    async def settle(self, counter: str | None, reserved: int, actual: int) -> None:
        """Replace the reservation by the actual cost (never below zero, as budgets do)."""
        if counter is not None:
            reserved = max(reserved, 1)
            actual = max(actual, 0)
            if actual != reserved:
                await self.book.adjust(counter, actual - reserved)

    async def _rebuild(self, counter: str, account_id: int) -> None:
        """First use, or the store lost the counter: billing's repair starts it from the credit ledger
        (drawn usage plus usage recorded and not drawn yet), or from the counter as last seen here when that is more."""
        value = await run_db(control.credit_counter_repair, account_id=account_id, seen=self.book.last_seen(counter))
        await self.store.initialise(counter, value, TTL)


def _refusal(micros: int, left: float, currency: str) -> str:
    if left <= 0:
        return f"The credit balance is used up. {TOP_UP_HINT}"
    return (
        f"This request could cost up to {_amount(micros)} {currency}; the credit balance has {_amount(left)} {currency} left. "
        f"A lower max_tokens may fit. {TOP_UP_HINT}"
    )
