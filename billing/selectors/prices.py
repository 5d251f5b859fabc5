"""The price book and exchange rates: as the pages and the REST API list them, and as the relay charges them
(relay.snapshots) and the estimator quotes them."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from billing.models import ExchangeRate, Price
from wire.pricing import PriceSnapshot, snapshot_from_row


def price_book(*, organization, provider: str | None = None, upstream_model: str | None = None) -> QuerySet[Price]:
    """The organization's effective price book: its own entries, plus the global ones of each model it has not
    priced itself yet.

    The same precedence as `prices_for`, which the relay charges with: the organization's entries
    win from the first one's effective date, and until then the global book prices the model. So a global entry
    drops out only once an own entry of that model has taken effect (one scheduled for later leaves it in force).
    """
    own = Price.objects.filter(
        organization=organization, provider=OuterRef("provider"), upstream_model=OuterRef("upstream_model"),
        effective_from__lte=timezone.now(),
    )
    prices = Price.objects.filter(Q(organization=organization) | (Q(organization=None) & ~Exists(own)))
    if provider:
        prices = prices.filter(provider=provider)
    if upstream_model:
        prices = prices.filter(upstream_model=upstream_model)
    return prices.order_by("provider", "upstream_model", "-effective_from", "-id")


def price_rank(price: Price) -> tuple:
    """The relay's order for one model's entries: the organization's own first, then newest first."""
    return (price.organization_id is None, -price.effective_from.timestamp(), -price.pk)


def prices_mark_in_force(prices: list[Price], book: QuerySet[Price], *, now: datetime | None = None) -> list[Price]:
    """Set `in_force` on each entry: the one of its model that prices requests made now (as `price_at` picks)."""
    now = now or timezone.now()
    current: dict[tuple[str, str], Price] = {}
    rows = book.filter(
        provider__in={p.provider for p in prices}, upstream_model__in={p.upstream_model for p in prices}, effective_from__lte=now,
    ).only("pk", "organization_id", "provider", "upstream_model", "effective_from")
    for row in sorted(rows, key=price_rank):
        current.setdefault((row.provider, row.upstream_model), row)
    for price in prices:
        chosen = current.get((price.provider, price.upstream_model))
        price.in_force = chosen is not None and chosen.pk == price.pk
    return prices


@dataclass
class PricedModel:
    """One provider model of the book: the entry in force, those scheduled after it, and the ones before."""

    provider: str
    upstream_model: str
    current: Price | None
    scheduled: list[Price]
    history: list[Price]

    @property
    def entries(self) -> list[Price]:
        return [*self.scheduled, *([self.current] if self.current else []), *self.history]


def price_book_models(
    *, organization, provider: str | None = None, upstream_model: str | None = None, now: datetime | None = None,
) -> list[PricedModel]:
    """The book grouped by provider and model, in one query: what the prices page lists."""
    now = now or timezone.now()
    grouped: dict[tuple[str, str], list[Price]] = {}
    for price in price_book(organization=organization, provider=provider, upstream_model=upstream_model):
        grouped.setdefault((price.provider, price.upstream_model), []).append(price)
    models = []
    for (provider_slug, upstream_model), entries in grouped.items():
        entries.sort(key=price_rank)
        current = next((p for p in entries if p.effective_from <= now), None)
        scheduled = sorted((p for p in entries if p.effective_from > now), key=lambda p: p.effective_from)
        history = [p for p in entries if p.effective_from <= now and p is not current]
        history.sort(key=lambda p: p.effective_from, reverse=True)
        for price in entries:
            price.in_force = price is current
        models.append(PricedModel(provider_slug, upstream_model, current, scheduled, history))
    return models


def exchange_rate_list(*, organization) -> QuerySet[ExchangeRate]:
    return ExchangeRate.objects.filter(organization=organization).select_related("organization").order_by("currency", "-effective_from", "-id")


def exchange_rates_mark_in_force(rates: list[ExchangeRate], *, organization, now: datetime | None = None) -> list[ExchangeRate]:
    """Set `in_force` on each rate: the newest of its currency that has taken effect."""
    current: dict[str, int] = {}
    rows = ExchangeRate.objects.filter(organization=organization, effective_from__lte=now or timezone.now())
    for pk, currency in rows.order_by("currency", "-effective_from", "-id").values_list("pk", "currency"):
        current.setdefault(currency, pk)
    for rate in rates:
        rate.in_force = current.get(rate.currency) == rate.pk
    return rates


def price_visible(*, organization, pk: int) -> Price | None:
    """One entry of the organization's book or of the global book (never another organization's)."""
    return Price.objects.filter(Q(organization=organization) | Q(organization=None)).filter(pk=pk).first()


def prices_for(*, organization_id: int, provider: str, upstream_model: str) -> tuple[PriceSnapshot, ...]:
    """The org's own entries (newest first), then the global book's: `price_at` takes the first in
    force, so the org's book wins from its first effective date and the global one covers before."""
    rows = Price.objects.filter(provider=provider, upstream_model=upstream_model)
    own = rows.filter(organization_id=organization_id).order_by("-effective_from")
    seeded = rows.filter(organization=None).order_by("-effective_from")
    return tuple(snapshot_from_row(row) for row in [*own, *seeded])


def exchange_rates_for(*, organization_id: int) -> tuple[tuple[str, Decimal, float], ...]:
    """Per currency, the rates scheduled after now and the one in force now (older ones can no longer apply)."""
    rates: list[tuple[str, Decimal, float]] = []
    settled: set[str] = set()
    now = timezone.now()
    for row in ExchangeRate.objects.filter(organization_id=organization_id).order_by("currency", "-effective_from", "-id"):
        if row.currency in settled:
            continue
        rates.append((row.currency, row.rate, row.effective_from.timestamp()))
        if row.effective_from <= now:
            settled.add(row.currency)
    return tuple(rates)
