"""README "Sandbox keys": the official openai SDK against the relay; the mock upstream counts the calls that
would have reached the provider (none)."""

from decimal import Decimal

import pytest

from billing import services as billing_services
from billing.models import Budget, UsageEvent
from keys import services as key_services
from tests.gateway import drain_usage, wait_for
from wire import tokens
from wire.adapters.mock import REPLY

ASK = [{"role": "user", "content": "Summarise this document"}]


def ledger_row(request_id):
    def find():
        drain_usage()
        return UsageEvent.objects.filter(request_id=request_id).first()

    return wait_for(find)


def sandbox_key(gateway):
    _key, secret = key_services.virtual_key_create(actor=gateway.ctx, name="sandbox", user=gateway.ctx.user, sandbox=True)
    return _key, secret


@pytest.fixture
def priced(gateway):
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD", input_per_m="1000", output_per_m="2000")


def test_the_demo_model_answers_priced_as_the_model_named_at_no_cost(gateway, upstream, priced):
    key, secret = sandbox_key(gateway)
    raw = gateway.client(secret).chat.completions.with_raw_response.create(model="gpt-test", messages=ASK)
    answer = raw.parse()
    text = answer.choices[0].message.content
    assert text == REPLY + "Summarise this document"
    assert upstream.requests == []  # nothing reached the provider
    row = ledger_row(raw.headers["x-request-id"])
    assert row.sandbox and row.cost == 0 and row.cost_display == 0 and row.key_id == key.pk
    # Tokens counted with the real tokenizer; priced at the named model's deployment price (1000 / 2000 per 1M).
    assert row.usage_source == "estimated"
    assert row.prompt_tokens == tokens.estimate_prompt("chat", {"messages": ASK})
    assert row.completion_tokens == tokens.count_text(text)
    expected = (Decimal(row.prompt_tokens) * 1000 + Decimal(row.completion_tokens) * 2000) / 1_000_000
    assert row.would_have_cost == expected > 0
    assert row.model_name == "gpt-test" and row.upstream_model == "echo"


def test_streams_and_embeddings_work_too(gateway, upstream, priced):
    _key, secret = sandbox_key(gateway)
    client = gateway.client(secret)
    chunks = list(client.chat.completions.create(model="gpt-test", messages=ASK, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY + "Summarise this document"
    assert len(client.embeddings.create(model="gpt-test", input=["a", "b"]).data) == 2
    assert upstream.requests == []


def test_budgets_are_not_drawn(gateway, upstream, priced):
    key, secret = sandbox_key(gateway)
    # A hard key budget far below one request's cost: a normal key would be refused (429).
    billing_services.budget_create(actor=gateway.ctx, scope=Budget.Scope.KEY, key=key, period=Budget.Period.MONTH, amount=Decimal("0.000001"), hard=True)
    raw = gateway.client(secret).chat.completions.with_raw_response.create(model="gpt-test", messages=ASK, max_tokens=50)
    assert raw.parse().choices[0].message.content.startswith(REPLY.split(" ")[0])
    row = ledger_row(raw.headers["x-request-id"])
    assert row.sandbox and row.cost == 0 and row.would_have_cost > Decimal("0.000001")


def test_a_sandbox_key_never_uses_the_response_cache(gateway, upstream, priced):
    key_services.model_update(actor=gateway.ctx, model=gateway.model, response_cache=True)
    _key, secret = sandbox_key(gateway)
    client = gateway.client(secret)
    answers = [client.chat.completions.with_raw_response.create(model="gpt-test", messages=ASK, temperature=0) for _ in range(2)]
    assert all("x-tollgate-cache" not in a.headers for a in answers)
    # ... and a normal key of the same organization is not answered with the sandbox's demo answer.
    real = gateway.client().chat.completions.with_raw_response.create(model="gpt-test", messages=ASK, temperature=0)
    assert real.headers["x-tollgate-cache"] == "miss" and real.parse().choices[0].message.content.startswith("Hello from the mock")


def test_a_downgrade_records_what_the_model_asked_for_would_have_cost(gateway, upstream, priced):
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo-cheap", currency="USD", input_per_m="1", output_per_m="2")
    gateway.add_model("cheap", "echo-cheap")
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="0.01", hard=False, downgrade_model="cheap")
    client = gateway.client()
    for _ in range(30):
        if client.chat.completions.with_raw_response.create(model="gpt-test", messages=ASK, max_tokens=10).headers["x-tollgate-model"] == "cheap":
            break
    row = wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(downgraded_from="gpt-test").first())[1])
    expected = (Decimal(row.prompt_tokens - row.cached_tokens) * 1000 + Decimal(row.cached_tokens) * 1000 + Decimal(row.completion_tokens) * 2000) / 1_000_000
    assert row.model_name == "cheap" and row.would_have_cost == expected > row.cost_display > 0


def test_a_sandbox_answer_does_not_end_a_real_deployments_cooldown(gateway, upstream, relay_server):
    import openai

    model = gateway.add_model("flaky", "fail-500")
    key_services.model_update(actor=gateway.ctx, model=model, cooldown_failures=1, max_attempts=1, cooldown_seconds=300)
    deployment = model.deployments.get()
    with pytest.raises(openai.InternalServerError):
        gateway.client().chat.completions.create(model="flaky", messages=ASK)
    cooldowns = relay_server.relay.runtime.cooldowns
    assert deployment.pk in cooldowns._until
    _key, secret = sandbox_key(gateway)
    assert gateway.client(secret).chat.completions.create(model="flaky", messages=ASK).choices[0].message.content.startswith("This is")
    assert deployment.pk in cooldowns._until  # still cooling for everyone else


def test_the_sandboxed_model_is_built_once_per_snapshot_and_follows_a_reload(gateway):
    """relay.sandbox memoises the sandboxed copy on the model snapshot; a reloaded snapshot (a configuration
    change) gets a copy of its own, with the change."""
    from relay.sandbox import sandboxed
    from relay.snapshots import model_snapshot

    snapshot = model_snapshot(organization_id=gateway.org.pk, name="gpt-test")
    first = sandboxed(snapshot)
    assert sandboxed(snapshot) is first  # not rebuilt per request
    assert [d.target.wire for d in first.deployments] == ["mock"] and snapshot.deployments[0].target.wire != "mock"

    deployment = gateway.model.deployments.get()
    key_services.deployment_update(actor=gateway.ctx, deployment=deployment, weight=7)
    reloaded = model_snapshot(organization_id=gateway.org.pk, name="gpt-test")
    again = sandboxed(reloaded)
    assert again is not first and [d.weight for d in again.deployments] == [7]
    assert first.deployments[0].weight != 7
