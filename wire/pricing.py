"""Pricing a request exactly, in Decimal: tiers by prompt size, time-of-day windows, effective dates.

Snapshots are immutable so the relay can cache them beside the model snapshot.
"""

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone
from decimal import ROUND_CEILING, Decimal

MILLION = Decimal(1_000_000)
MICROS = Decimal(1_000_000)  # budget counters count micro-units of the org currency


@dataclass(frozen=True)
class Rates:
    input: Decimal
    cached_input: Decimal | None  # None: the input price
    output: Decimal
    cache_write: Decimal | None = None  # None: the input price (flagged: billing.services.unpriced_usage_alert)

    @property
    def dearest_input(self) -> Decimal:
        """The most one prompt token can cost: writing it to a cache may cost more than reading it plainly."""
        return self.input if self.cache_write is None else max(self.input, self.cache_write)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # Monday = 0
    start_minute: int
    end_minute: int
    multiplier: Decimal

    def covers(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start_minute <= minute < self.end_minute


@dataclass(frozen=True)
class PriceSnapshot:
    id: int
    currency: str
    effective_from: float  # epoch seconds
    base: Rates
    tiers: tuple[tuple[int, Rates], ...]  # (above_prompt_tokens, rates), ascending
    time_zone: str
    windows: tuple[Window, ...]
    per_search_unit: Decimal | None = None  # rerank (Cohere's search units); None: not priced per search

    def rates_for(self, prompt_tokens: int) -> Rates:
        rates = self.base
        for above, tier in self.tiers:
            if prompt_tokens > above:
                rates = tier
        return rates

    def multiplier_at(self, epoch: float) -> Decimal:
        if not self.windows:
            return Decimal(1)
        local = datetime.fromtimestamp(epoch, tz=zoneinfo.ZoneInfo(self.time_zone))
        for window in self.windows:
            if window.covers(local):
                return window.multiplier
        return Decimal(1)

    def cost(self, *, prompt_tokens: int, cached_tokens: int, completion_tokens: int, at: float, cache_write_tokens: int = 0,
             search_units: int = 0) -> Decimal:
        """Prompt tokens read from a cache, written to one, and the rest, each at its rate; search units at theirs."""
        rates = self.rates_for(prompt_tokens)
        cached = min(cached_tokens, prompt_tokens)
        written = min(cache_write_tokens, prompt_tokens - cached)
        cached_rate = rates.cached_input if rates.cached_input is not None else rates.input
        write_rate = rates.cache_write if rates.cache_write is not None else rates.input
        amount = (
            (prompt_tokens - cached - written) * rates.input + cached * cached_rate + written * write_rate
            + completion_tokens * rates.output
        )
        return (amount / MILLION + self._searches(search_units)) * self.multiplier_at(at)

    def _searches(self, search_units: int) -> Decimal:
        return search_units * self.per_search_unit if search_units and self.per_search_unit is not None else Decimal(0)

    def worst_case(self, *, prompt_tokens: int, completion_tokens: int, search_units: int = 0) -> Decimal:
        """The most a request of this size can cost: no cache hits, every prompt token at its dearest
        (a cache write), the dearest window."""
        rates = self.rates_for(prompt_tokens)
        multiplier = max([Decimal(1), *(w.multiplier for w in self.windows)])
        tokens = (prompt_tokens * rates.dearest_input + completion_tokens * rates.output) / MILLION
        return (tokens + self._searches(search_units)) * multiplier


def _decimal(value) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def snapshot_from_row(row) -> PriceSnapshot:
    """A Price model instance to its immutable snapshot."""
    base = Rates(row.input_per_m, row.cached_input_per_m, row.output_per_m, row.cache_write_per_m)
    tiers = tuple(
        sorted(
            (
                int(t["above_prompt_tokens"]),
                Rates(_decimal(t["input"]), _decimal(t.get("cached_input")), _decimal(t["output"]), _decimal(t.get("cache_write"))),
            )
            for t in row.tiers or []
        )
    )
    windows = tuple(
        Window(frozenset(int(d) for d in w["days"]), _minutes(w["start"]), _minutes(w["end"]), _decimal(w["multiplier"]))
        for w in row.windows or []
    )
    return PriceSnapshot(row.pk, row.currency, row.effective_from.timestamp(), base, tiers, row.time_zone, windows, row.per_search_unit)


def price_at(prices: tuple[PriceSnapshot, ...], epoch: float) -> PriceSnapshot | None:
    """The first entry in force at `epoch` (each book sorted newest first, preferred book first)."""
    for price in prices:
        if price.effective_from <= epoch:
            return price
    return None


def rate_at(rates: tuple[tuple[str, Decimal, float], ...], display_currency: str, currency: str, at: float) -> Decimal | None:
    """The value of one unit of `currency` in the display currency at `at`, from (currency, rate, effective
    from) rows newest first per currency (billing.selectors.exchange_rates_for); None: no rate."""
    if currency == display_currency:
        return Decimal(1)
    for name, rate, effective_from in rates:
        if name == currency and effective_from <= at:
            return rate
    return None


def to_micros(amount: Decimal) -> int:
    """Budget counter units, rounded up so reservations never undercount."""
    return int((amount * MICROS).to_integral_value(rounding=ROUND_CEILING))


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=dt_timezone.utc)
