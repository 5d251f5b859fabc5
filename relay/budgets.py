"""Budget admission: reserve a request's worst-case cost against every budget in force, from leases.

Counters count micro-units of the org currency per (budget, period) and live in the lease store
(Redis, or this process in the embedded default). A counter that is missing (first use in a
period, or Redis lost it) is rebuilt before the first lease by billing's one counter repair
(billing.counters, which the periodic reconciliation uses too). Bound: a hard budget
is overspent by at most what admitted requests cost beyond their reservation (only possible when
the upstream reports more tokens than max_tokens allowed for) — see README "Budgets".
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from relay import control
from relay.db import run_db
from relay.leases import MissingCounter
from wire.errors import BudgetExceeded
from wire.periods import budget_counter
from wire.pricing import MICROS

log = logging.getLogger(__name__)

UNLIMITED = 10**18  # soft budgets still count, but never refuse


class BudgetGate:
    def __init__(self, book, store, *, on_threshold=None):
        self.book = book
        self.store = store
        self._notified: dict[str, int] = {}
        self._on_threshold = on_threshold  # callable(budget_id), e.g. enqueue the Celery evaluation
        self.open_reservations = 0  # admitted and not yet settled (reconciliation checks it returns to 0)
        self._inflight: dict[str, int] = {}  # micros reserved and not yet settled here, per counter

    async def reserve(self, key, micros: int, now: float) -> tuple[list[tuple[str, object]], str]:
        """Reserve `micros` on each budget; raises BudgetExceeded (nothing held) if a hard one is full.

        Returns what is held and, when an exhausted soft budget names one, the model to downgrade to.
        """
        held: list[tuple[str, object]] = []
        downgrade = ""
        for budget in key.budgets:
            counter = budget_counter(budget.id, budget.period, key.time_zone, now)
            limit = budget.limit_micros if budget.hard else UNLIMITED
            ttl = _ttl(budget.period)
            for attempt in range(3):  # the store may lose the counter again (Redis failing over meanwhile)
                try:
                    admitted = await self.book.take(counter, limit, micros, ttl=ttl, must_exist=True)
                    break
                except MissingCounter:
                    if attempt == 2:
                        raise
                    await self._rebuild(counter, budget, now, ttl)
            if not admitted:
                for taken, _ in held:
                    await self.book.adjust(taken, -micros)
                    self._inflight[taken] -= micros
                raise BudgetExceeded(_refusal(budget, micros, self.book.remaining_estimate(counter, limit), key.currency), param=budget.scope)
            held.append((counter, budget))
            self._inflight[counter] = self._inflight.get(counter, 0) + micros
            if not budget.hard and budget.downgrade_model and self.book.spent_estimate(counter) > budget.limit_micros:
                downgrade = downgrade or budget.downgrade_model
        self.open_reservations += 1 if held else 0
        return held, downgrade

    async def settle(self, held, reserved: int, actual: int) -> None:
        """Replace the reservation by the actual cost. A cost below zero (an upstream's usage can be
        anything) counts as zero, so settling gives back at most what this request reserved: never
        what other requests spent."""
        self.open_reservations -= 1
        actual = max(actual, 0)
        for counter, budget in held:
            if actual != reserved:
                await self.book.adjust(counter, actual - reserved)
            self._inflight[counter] = self._inflight.get(counter, 0) - reserved
            if self._inflight[counter] <= 0:
                del self._inflight[counter]
            self._check_thresholds(counter, budget)

    async def _rebuild(self, counter: str, budget, now: float, ttl: int) -> None:
        """First use in a period, or the store lost the counter: billing's repair starts it from the
        ledger, or from the shared counter as this process last saw it when that is more (spend still
        on its way to the ledger: buffered, spooled or in the stream - e.g. when Redis has just gone away)."""
        value = await run_db(control.budget_counter_repair, budget_id=budget.id, at=now, seen=self.book.last_seen(counter))
        await self.store.initialise(counter, value, ttl)

    def _check_thresholds(self, counter: str, budget) -> None:
        if self._on_threshold is None or not budget.limit_micros:
            return
        # Spent, not reserved: the evaluation reads the ledger, where only settled requests are
        # (checking at admission asked for it before the crossing requests had been recorded).
        spent = self.book.spent_estimate(counter) - self._inflight.get(counter, 0)
        percent = spent * 100 / budget.limit_micros
        crossed = max((t for t in budget.thresholds if percent >= t), default=0)
        if crossed > self._notified.get(counter, 0):
            self._notified[counter] = crossed
            self._on_threshold(budget.id)


def _refusal(budget, micros: int, left: float, currency: str) -> str:
    """Why a hard budget refused: spent, or not enough left for this request's worst case (then say both
    figures, so a caller knows that a smaller max_tokens would fit)."""
    if left <= 0:
        return f"The {budget.scope} budget '{budget.label}' is exhausted for this {budget.period}."
    return (
        f"This request could cost up to {_amount(micros)} {currency}; {_amount(left)} {currency} is left of the "
        f"{budget.scope} budget '{budget.label}' for this {budget.period}. A lower max_tokens may fit."
    )


def _amount(micros: float) -> str:
    """Micro-units as a plain decimal with every significant digit down to the micro-unit (0.0123, 0.004, 1.50)."""
    amount = (Decimal(int(micros)) / MICROS).normalize()
    return f"{amount.quantize(Decimal('0.01')) if amount.as_tuple().exponent > -2 else amount:f}"


def _ttl(period: str) -> int:
    return {"day": 2 * 86400, "week": 8 * 86400, "month": 32 * 86400}.get(period, 400 * 86400)


def threshold_notifier():
    """Enqueue billing's evaluation on a thread of its own: a broker call is blocking I/O that can
    wait seconds while Redis stalls. Crossings of a budget already waiting to be sent coalesce, so
    a stall holds one thread and one message per budget, never the event loop or the shared executor."""
    sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="budget-notify")
    waiting: set[int] = set()

    def send(budget_id: int) -> None:
        waiting.discard(budget_id)  # a crossing from now on needs a message of its own
        _send(budget_id)

    def notify(budget_id: int) -> None:
        if budget_id not in waiting:
            waiting.add(budget_id)
            sender.submit(send, budget_id)

    return notify


# Long enough for the settled requests' usage to be flushed (relay.usage.FLUSH_SECONDS) into the
# stream that the evaluation drains first.
EVALUATE_DELAY_SECONDS = 1


def _send(budget_id: int) -> None:
    try:
        # No publish retries: the periodic evaluation (every minute) catches what a lost message misses.
        control.enqueue_budget_evaluation(budget_id, countdown=EVALUATE_DELAY_SECONDS, retry=False)
    except Exception as exc:
        log.warning("could not enqueue budget evaluation: %s", exc.__class__.__name__)
