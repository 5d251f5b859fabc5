"""Anthropic cache writes are priced at the price book's cache write price, exactly, through the relay;
a price without one charges them at the input price and is flagged."""

from decimal import Decimal

import pytest

from billing import services as billing_services
from billing.models import Alert, Price, UsageEvent
from keys import services as key_services
from tests.gateway import drain_usage, wait_for
from wire.adapters.anthropic import usage_from
from wire.pricing import snapshot_from_row

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there, please remember this long prompt"}]


@pytest.fixture
def claude(gateway, upstream):
    credential = key_services.credential_create(actor=gateway.ctx, name="mock-anthropic", provider="anthropic",
                                                base_url=upstream.url, api_key="test-key")
    model = key_services.model_create(actor=gateway.ctx, name="claude")
    key_services.deployment_create(actor=gateway.ctx, model=model, credential=credential, upstream_model="cache-write")
    return gateway


def price(gateway, cache_write):
    return billing_services.price_create(
        actor=gateway.ctx, provider="anthropic", upstream_model="cache-write", currency="USD", input_per_m="3",
        cached_input_per_m="0.30", cache_write_per_m=cache_write, output_per_m="15",
    )


def event_of(gateway, raw):
    return wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(request_id=raw.headers["x-request-id"]).first())[1])


def test_the_adapter_reports_cache_writes_apart():
    usage = usage_from({"input_tokens": 12, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2048, "output_tokens": 9})
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.completion_tokens) == (2160, 2048, 100, 9)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_cache_writes_cost_the_cache_write_price(claude, upstream, stream):
    price(claude, cache_write="3.75")
    client = claude.client()
    if stream:
        raw = client.chat.completions.with_raw_response.create(model="claude", messages=MESSAGES, max_tokens=20, stream=True)
        list(raw.parse())
    else:
        raw = client.chat.completions.with_raw_response.create(model="claude", messages=MESSAGES, max_tokens=20)
    event = event_of(claude, raw)
    served = upstream.ledger[-1]
    written = served.prompt_tokens - 2 - 1
    assert written > 0
    assert (event.prompt_tokens, event.cached_tokens, event.cache_write_tokens) == (served.prompt_tokens, 2, written)
    # 1 plain input token at 3, 2 cache reads at 0.30, the writes at 3.75, the output at 15 (per 1M)
    expected = (Decimal(1) * 3 + Decimal(2) * Decimal("0.30") + written * Decimal("3.75") + event.completion_tokens * 15) / 1_000_000
    assert event.cost == expected and event.cost_display == expected


def test_a_price_without_a_cache_write_price_charges_input_and_is_flagged(claude, upstream):
    price(claude, cache_write=None)
    raw = claude.client().chat.completions.with_raw_response.create(model="claude", messages=MESSAGES, max_tokens=20)
    event = event_of(claude, raw)
    written = event.cache_write_tokens
    assert written > 0
    expected = (Decimal(1 + written) * 3 + Decimal(2) * Decimal("0.30") + event.completion_tokens * 15) / 1_000_000
    assert event.cost == expected
    billing_services.unpriced_usage_alert()
    alert = Alert.objects.get(organization=claude.org, kind="price.cache_write_missing")
    assert alert.payload["upstream_model"] == "cache-write"


def test_the_worst_case_counts_every_prompt_token_as_a_cache_write(org):
    row = Price(provider="anthropic", upstream_model="m", currency="USD", input_per_m=Decimal(3), cached_input_per_m=Decimal("0.3"),
                cache_write_per_m=Decimal("3.75"), output_per_m=Decimal(15), effective_from=org.created_at)
    snapshot = snapshot_from_row(row)
    assert snapshot.worst_case(prompt_tokens=1000, completion_tokens=100) == Decimal("0.00525")  # 1000 x 3.75 + 100 x 15


@pytest.mark.django_db
def test_the_seeded_book_has_anthropic_cache_write_prices():
    seeded = dict(Price.objects.filter(organization=None, provider="anthropic").values_list("upstream_model", "cache_write_per_m"))
    assert seeded["claude-sonnet-4-5"] == Decimal("3.75") and seeded["claude-opus-4-1"] == Decimal("18.75")
    assert seeded["claude-haiku-4-5"] == Decimal("1.25")
    assert all(value is not None for value in seeded.values())


@pytest.mark.django_db
def test_a_tier_can_have_its_own_cache_write_price(owner_ctx):
    row = billing_services.price_create(
        actor=owner_ctx, provider="anthropic", upstream_model="m", currency="USD", input_per_m="3", output_per_m="15",
        cache_write_per_m="3.75", tiers=[{"above_prompt_tokens": 200_000, "input": "6", "output": "22.5", "cache_write": "7.5"}],
    )
    snapshot = snapshot_from_row(row)
    cost = snapshot.cost(prompt_tokens=300_000, cached_tokens=0, completion_tokens=0, at=snapshot.effective_from, cache_write_tokens=100_000)
    assert cost == Decimal("1.95")  # 200k x 6 + 100k x 7.5, per 1M
