"""Exact Decimal pricing: base, cached, tiers, time-of-day windows, effective dates, and the worst case.

Every expected amount below is worked out by hand from the per-1M prices: cost = (uncached prompt × input
+ cached × cached_input + completion × output) × window multiplier / 1,000,000.
"""

import asyncio
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.crypto import keyed_hash, new_secret
from accounts.models import Role
from accounts.tenancy import OrgContext
from billing import services
from billing.ledger import usage_ingest
from billing.models import Price, UsageEvent
from billing.selectors import prices_for
from keys.services import VIRTUAL_KEY_PREFIX
from relay.record import Record
from relay.snapshots import key_snapshot_by_hash, model_snapshot
from tests.accounts.factories import MembershipFactory, OrganizationFactory
from tests.billing.factories import PriceFactory
from tests.keys.factories import DeploymentFactory, VirtualKeyFactory
from wire.adapters.base import Usage
from wire.pricing import price_at, snapshot_from_row, to_micros

UTC = dt_timezone.utc


def at(*args) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def snapshot(**fields):
    """A snapshot of an unsaved Price row (no database)."""
    defaults = dict(
        pk=1, organization=None, provider="openai", upstream_model="m", currency="USD", input_per_m=Decimal("2.50"),
        cached_input_per_m=Decimal("1.25"), output_per_m=Decimal("10.00"), tiers=[], windows=[], time_zone="UTC",
        effective_from=datetime(2025, 1, 1, tzinfo=UTC),
    )
    return snapshot_from_row(Price(**{**defaults, **fields}))


NOON = at(2026, 11, 16, 12, 0)  # a Monday


# Base and cached prices


def test_base_cost_is_exact():
    price = snapshot()
    # (1000 × 2.50 + 500 × 10.00) / 1e6 = 7500 / 1e6
    assert price.cost(prompt_tokens=1000, cached_tokens=0, completion_tokens=500, at=NOON) == Decimal("0.0075")


def test_cached_tokens_use_the_cached_price():
    price = snapshot()
    # (600 × 2.50 + 400 × 1.25 + 500 × 10.00) / 1e6 = (1500 + 500 + 5000) / 1e6
    assert price.cost(prompt_tokens=1000, cached_tokens=400, completion_tokens=500, at=NOON) == Decimal("0.007")


def test_cached_tokens_without_a_cached_price_pay_the_input_price():
    price = snapshot(cached_input_per_m=None)
    assert price.cost(prompt_tokens=1000, cached_tokens=400, completion_tokens=0, at=NOON) == Decimal("0.0025")


def test_cached_tokens_never_exceed_the_prompt():
    price = snapshot()
    # All 1000 prompt tokens at the cached price, whatever the upstream claimed: 1000 × 1.25 / 1e6
    assert price.cost(prompt_tokens=1000, cached_tokens=5000, completion_tokens=0, at=NOON) == Decimal("0.00125")


def test_tiny_prices_stay_exact():
    price = snapshot(input_per_m=Decimal("0.075"), cached_input_per_m=Decimal("0.01875"), output_per_m=Decimal("0.3"))
    # (7 × 0.075 + 3 × 0.01875 + 1 × 0.3) / 1e6 = (0.525 + 0.05625 + 0.3) / 1e6
    assert price.cost(prompt_tokens=10, cached_tokens=3, completion_tokens=1, at=NOON) == Decimal("0.00000088125")


# Tiers by prompt size

TIERED = dict(
    input_per_m=Decimal("1.25"), cached_input_per_m=Decimal("0.3125"), output_per_m=Decimal("10"),
    tiers=[{"above_prompt_tokens": 200000, "input": "2.50", "cached_input": "0.625", "output": "15"},
           {"above_prompt_tokens": 32000, "input": "1.50", "cached_input": None, "output": "12"}],
)


def test_at_the_tier_boundary_the_lower_price_applies():
    price = snapshot(**TIERED)
    # 200000 is not above 200000: the 32k tier. (200000 × 1.50 + 1000 × 12) / 1e6
    assert price.cost(prompt_tokens=200_000, cached_tokens=0, completion_tokens=1000, at=NOON) == Decimal("0.312")


def test_above_a_tier_the_whole_request_is_priced_at_it():
    price = snapshot(**TIERED)
    # (190001 × 2.50 + 10000 × 0.625 + 1000 × 15) / 1e6 = (475002.5 + 6250 + 15000) / 1e6
    assert price.cost(prompt_tokens=200_001, cached_tokens=10_000, completion_tokens=1000, at=NOON) == Decimal("0.4962525")


def test_a_tier_without_cached_price_charges_cached_tokens_at_its_input_price():
    price = snapshot(**TIERED)
    # 32k tier: (40000 × 1.50 + 0 × 12) / 1e6, cached or not
    assert price.cost(prompt_tokens=40_000, cached_tokens=10_000, completion_tokens=0, at=NOON) == Decimal("0.06")


def test_below_every_tier_the_base_price_applies():
    price = snapshot(**TIERED)
    # (32000 × 1.25 + 100 × 10) / 1e6
    assert price.cost(prompt_tokens=32_000, cached_tokens=0, completion_tokens=100, at=NOON) == Decimal("0.041")


# Time-of-day windows: DeepSeek's peak hours cost double, in Beijing time (UTC+8)

DEEPSEEK = dict(
    provider="deepseek", upstream_model="deepseek-flash", input_per_m=Decimal("0.15"), cached_input_per_m=Decimal("0.003"),
    output_per_m=Decimal("0.60"), time_zone="Asia/Shanghai",
    windows=[{"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "12:00", "multiplier": "2"},
             {"days": [0, 1, 2, 3, 4], "start": "14:00", "end": "18:00", "multiplier": "2"}],
)
# (10000 × 0.15 + 2345 × 0.003 + 678 × 0.60) / 1e6 = (1500 + 7.035 + 406.8) / 1e6
DEEPSEEK_OFF_PEAK = Decimal("0.001913835")
DEEPSEEK_PEAK = Decimal("0.00382767")


@pytest.mark.parametrize(
    ("utc_instant", "expected"),
    [
        pytest.param((2026, 11, 16, 2, 30), DEEPSEEK_PEAK, id="Mon 10:30 Beijing = 02:30 UTC: peak"),
        pytest.param((2026, 11, 16, 1, 0), DEEPSEEK_PEAK, id="Mon 09:00 Beijing: the window starts (inclusive)"),
        pytest.param((2026, 11, 16, 0, 59), DEEPSEEK_OFF_PEAK, id="Mon 08:59 Beijing: not yet"),
        pytest.param((2026, 11, 16, 4, 0), DEEPSEEK_OFF_PEAK, id="Mon 12:00 Beijing: the window ends (exclusive)"),
        pytest.param((2026, 11, 16, 6, 0), DEEPSEEK_PEAK, id="Mon 14:00 Beijing: the afternoon window"),
        pytest.param((2026, 11, 16, 10, 0), DEEPSEEK_OFF_PEAK, id="Mon 18:00 Beijing: evening"),
        pytest.param((2026, 11, 20, 9, 30), DEEPSEEK_PEAK, id="Fri 17:30 Beijing = Fri 09:30 UTC"),
        pytest.param((2026, 11, 20, 17, 30), DEEPSEEK_OFF_PEAK, id="Fri 17:30 UTC = Sat 01:30 Beijing"),
        pytest.param((2026, 11, 21, 2, 30), DEEPSEEK_OFF_PEAK, id="Sat 10:30 Beijing: weekends are off-peak"),
        pytest.param((2026, 11, 15, 20, 0), DEEPSEEK_OFF_PEAK, id="Sun 20:00 UTC = Mon 04:00 Beijing"),
    ],
)
def test_deepseek_peak_hours_double_in_beijing_time(utc_instant, expected):
    price = snapshot(**DEEPSEEK)
    assert price.cost(prompt_tokens=12_345, cached_tokens=2_345, completion_tokens=678, at=at(*utc_instant)) == expected


def test_a_window_in_utc_would_have_given_another_answer():
    """The control: the same instant read as UTC (12:30 Monday) is off-peak, so the time zone is what decides."""
    peak_in_beijing = at(2026, 11, 16, 2, 30)
    assert snapshot(**{**DEEPSEEK, "time_zone": "UTC"}).multiplier_at(peak_in_beijing) == Decimal(1)
    assert snapshot(**DEEPSEEK).multiplier_at(peak_in_beijing) == Decimal(2)


def test_an_off_peak_discount_window():
    price = snapshot(windows=[{"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "08:00", "multiplier": "0.5"}])
    # (1000 × 2.50 + 500 × 10) × 0.5 / 1e6
    assert price.cost(prompt_tokens=1000, cached_tokens=0, completion_tokens=500, at=at(2026, 11, 16, 3, 0)) == Decimal("0.00375")
    assert price.cost(prompt_tokens=1000, cached_tokens=0, completion_tokens=500, at=at(2026, 11, 16, 9, 0)) == Decimal("0.0075")


# Effective dates


def test_price_at_picks_the_entry_in_force():
    old = snapshot(pk=1, effective_from=datetime(2025, 1, 1, tzinfo=UTC), input_per_m=Decimal("1"))
    new = snapshot(pk=2, effective_from=datetime(2026, 6, 1, tzinfo=UTC), input_per_m=Decimal("3"))
    prices = (new, old)  # newest first, as billing.selectors.prices_for returns them
    assert price_at(prices, at(2024, 12, 31, 23, 59)) is None
    assert price_at(prices, at(2025, 1, 1)).id == 1
    assert price_at(prices, at(2026, 5, 31, 23, 59)).id == 1
    assert price_at(prices, at(2026, 6, 1)).id == 2
    assert price_at(prices, at(2030, 1, 1)).id == 2


@pytest.mark.django_db
def test_an_org_price_hides_the_global_one_from_its_effective_date():
    org, other = OrganizationFactory(), OrganizationFactory()
    utc = dt_timezone.utc
    glob = PriceFactory(organization=None, upstream_model="shared-model", input_per_m=Decimal("1"), effective_from=datetime(2026, 1, 1, tzinfo=utc))
    own = PriceFactory(organization=org, upstream_model="shared-model", input_per_m=Decimal("0.5"), effective_from=datetime(2026, 6, 1, tzinfo=utc))
    book = prices_for(organization_id=org.pk, provider="openai", upstream_model="shared-model")
    assert [p.id for p in book] == [own.pk, glob.pk]  # the org's book first
    assert price_at(book, at(2026, 7, 1, 0, 0)).id == own.pk
    assert price_at(book, at(2026, 3, 1, 0, 0)).id == glob.pk  # before the org's entry: the global one
    assert [p.id for p in prices_for(organization_id=other.pk, provider="openai", upstream_model="shared-model")] == [glob.pk]


# The worst case reserved at admission


@pytest.mark.parametrize("fields", [{}, TIERED, DEEPSEEK], ids=["base", "tiers", "deepseek-windows"])
def test_worst_case_is_never_below_the_real_cost(fields):
    price = snapshot(**fields)
    instants = [at(2026, 11, 16, hour, 30) for hour in range(24)] + [at(2026, 11, 21, 3, 0)]
    for prompt in (0, 1, 31_999, 32_001, 200_001):
        for cached in (0, prompt // 2, prompt):
            for when in instants:
                cost = price.cost(prompt_tokens=prompt, cached_tokens=cached, completion_tokens=777, at=when)
                assert price.worst_case(prompt_tokens=prompt, completion_tokens=777) >= cost


def test_worst_case_of_deepseek_is_the_peak_price_without_cache():
    # (12345 × 0.15 + 678 × 0.60) × 2 / 1e6 = (1851.75 + 406.8) × 2 / 1e6
    assert snapshot(**DEEPSEEK).worst_case(prompt_tokens=12_345, completion_tokens=678) == Decimal("0.0045171")


def test_budget_counters_round_up_to_the_micro_unit():
    assert to_micros(Decimal("0.0000001")) == 1
    assert to_micros(Decimal("0.000001")) == 1
    assert to_micros(Decimal("0.0000011")) == 2
    assert to_micros(Decimal("1.5")) == 1_500_000


# Price edits never change past costs


def _relay_record(key_secret: str, org, model_name: str, request_id: str, when: float) -> dict:
    """Price one request exactly as the relay does (snapshots, price_at at the request's start)."""
    key = key_snapshot_by_hash(keyed_hash(key_secret))
    model = model_snapshot(organization_id=org.pk, name=model_name)
    record = Record(request_id, key, model, "chat", False, {"messages": []})
    record.created_at = when
    record.attempt(1, model.deployments[0])
    asyncio.run(record.usage(Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=0), "provider"))
    record.status_code = 200
    record.finish()
    return record.as_usage().as_fields()


@pytest.mark.django_db
def test_a_new_price_never_changes_recorded_costs():
    org = OrganizationFactory(currency="USD")
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    deployment = DeploymentFactory(organization=org, upstream_model="edit-test-model")
    secret = new_secret(VIRTUAL_KEY_PREFIX)
    VirtualKeyFactory(organization=org, secret=secret)
    price_a = PriceFactory(organization=org, upstream_model="edit-test-model", input_per_m=Decimal("2"), output_per_m=Decimal("8"),
                           effective_from=timezone.now() - timedelta(days=30))
    yesterday = (timezone.now() - timedelta(days=1)).timestamp()

    usage_ingest([_relay_record(secret, org, deployment.model.name, "req-before-edit", yesterday)])
    before = UsageEvent.objects.get(request_id="req-before-edit")
    # (1000 × 2 + 500 × 8) / 1e6
    assert (before.cost, before.price_id, before.cost_display) == (Decimal("0.006"), price_a.pk, Decimal("0.006"))

    actor = OrgContext(organization=org, role=Role.OWNER, user=owner)
    price_b = services.price_create(actor=actor, provider="openai", upstream_model="edit-test-model", currency="USD",
                                    input_per_m="4", output_per_m="16")
    assert Price.objects.get(pk=price_a.pk).input_per_m == Decimal("2"), "the old entry is kept as it was"

    after = UsageEvent.objects.get(request_id="req-before-edit")
    assert (after.cost, after.price_id, after.cost_display) == (Decimal("0.006"), price_a.pk, Decimal("0.006"))
    # Re-pricing the past with the book still gives A: B only takes effect from its own date.
    assert price_at(prices_for(organization_id=org.pk, provider="openai", upstream_model="edit-test-model"), yesterday).id == price_a.pk

    usage_ingest([_relay_record(secret, org, deployment.model.name, "req-after-edit", timezone.now().timestamp() + 1)])
    new = UsageEvent.objects.get(request_id="req-after-edit")
    # (1000 × 4 + 500 × 16) / 1e6
    assert (new.cost, new.price_id) == (Decimal("0.012"), price_b.pk)
