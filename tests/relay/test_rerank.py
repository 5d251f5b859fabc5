"""/v1/rerank through the real relay (httpx: the openai SDK has no rerank) to the loopback mock upstream's rerank
routes, one per wire format, governed like chat (README "Rerank")."""

import time
from decimal import Decimal

import httpx
import pytest

from billing import services as billing_services
from billing.models import UsageEvent
from keys import services as key_services
from tests.gateway import drain_usage, wait_for

QUERY = "capital of France"
DOCUMENTS = ["Berlin is in Germany", "Paris is the capital of France", {"text": "France has a capital"}]
# The mock tokenizer counts words + 3: query and documents.
TOKENS = 3 + 3 + 4 + 6 + 4


@pytest.fixture
def rerankers(gateway, upstream):
    """A model per rerank dialect on the mock upstream: cohere, jina, siliconflow, dashscope."""
    bases = {"cohere": upstream.url, "jina": upstream.url + "/v1", "siliconflow": upstream.url + "/siliconflow/v1",
             "dashscope-rerank": upstream.url + "/api/v1"}
    credentials = {}
    for provider, base in bases.items():
        credentials[provider] = key_services.credential_create(actor=gateway.ctx, name=f"mock-{provider}", provider=provider,
                                                               base_url=base, api_key="test-key")
        gateway.add_model(f"rr-{provider}", "echo", credential=credentials[provider])
    return credentials


def rerank(gateway, body, secret=None, headers=None):
    return httpx.post(gateway.base_url + "/rerank", json=body, headers={"authorization": f"Bearer {secret or gateway.secret}", **(headers or {})},
                      timeout=20)


def ledger_row(request_id):
    return wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(request_id=request_id).first())[1])


@pytest.mark.parametrize("provider, path, units", [
    ("cohere", "/v2/rerank", 1), ("jina", "/v1/rerank", 0), ("siliconflow", "/siliconflow/v1/rerank", 0),
    ("dashscope-rerank", "/api/v1/services/rerank/text-rerank/text-rerank", 0),
])
def test_each_wire_format_answers_in_one_shape_and_is_metered(rerankers, gateway, upstream, provider, path, units):
    response = rerank(gateway, {"model": f"rr-{provider}", "query": QUERY, "documents": DOCUMENTS, "top_n": 2, "return_documents": True})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == f"rr-{provider}" and answer["id"]
    assert answer["results"] == [
        {"index": 1, "relevance_score": 1.0, "document": {"text": "Paris is the capital of France"}},
        {"index": 2, "relevance_score": pytest.approx(2 / 3), "document": {"text": "France has a capital"}},
    ]
    sent = upstream.requests[-1]
    assert sent["path"] == path and sent["headers"].get("authorization", sent["headers"].get("Authorization")) == "Bearer test-key", sent
    documents = ["Berlin is in Germany", "Paris is the capital of France", "France has a capital"]  # objects sent as strings
    if provider == "dashscope-rerank":
        assert sent["json"] == {"model": "echo", "input": {"query": QUERY, "documents": documents},
                                "parameters": {"top_n": 2, "return_documents": False}}
    elif provider == "cohere":
        assert sent["json"] == {"model": "echo", "query": QUERY, "documents": documents, "top_n": 2}
    else:
        assert sent["json"] == {"model": "echo", "query": QUERY, "documents": documents, "top_n": 2, "return_documents": False}
    event = ledger_row(response.headers["x-request-id"])
    assert (event.endpoint, event.status_code, event.usage_source, event.provider) == ("rerank", 200, "provider", provider)
    assert (event.search_units, event.prompt_tokens, event.completion_tokens) == (units, 0 if provider == "cohere" else TOKENS, 0)
    if units:
        assert answer["meta"]["billed_units"]["search_units"] == units
    else:
        assert answer["usage"]["total_tokens"] == TOKENS


def test_per_search_unit_and_per_token_prices_are_exact_decimals(rerankers, gateway, upstream):
    billing_services.price_create(actor=gateway.ctx, provider="cohere", upstream_model="echo", currency="USD", input_per_m="0",
                                  output_per_m="0", per_search_unit="0.002")
    billing_services.price_create(actor=gateway.ctx, provider="jina", upstream_model="echo", currency="USD", input_per_m="0.02",
                                  output_per_m="0")
    many = [f"document number {i}" for i in range(150)]  # two search units at Cohere
    cohere = rerank(gateway, {"model": "rr-cohere", "query": QUERY, "documents": many})
    jina = rerank(gateway, {"model": "rr-jina", "query": QUERY, "documents": DOCUMENTS})
    assert "document" not in cohere.json()["results"][0]  # return_documents defaults to false
    assert len(cohere.json()["results"]) == 150
    event = ledger_row(cohere.headers["x-request-id"])
    assert (event.search_units, event.cost, event.cost_display) == (2, Decimal("0.004"), Decimal("0.004"))
    event = ledger_row(jina.headers["x-request-id"])
    assert event.cost == Decimal("0.02") * TOKENS / 1_000_000 and event.search_units == 0


def test_no_usage_reported_is_estimated_with_search_units(rerankers, gateway, upstream):
    gateway.add_model("rr-nousage", "nousage", credential=rerankers["cohere"])
    billing_services.price_create(actor=gateway.ctx, provider="cohere", upstream_model="nousage", currency="USD", input_per_m="0",
                                  output_per_m="0", per_search_unit="0.002")
    response = rerank(gateway, {"model": "rr-nousage", "query": QUERY, "documents": DOCUMENTS})
    assert response.status_code == 200 and "usage" not in response.json()
    event = ledger_row(response.headers["x-request-id"])
    assert (event.usage_source, event.search_units, event.cost) == ("estimated", 1, Decimal("0.002"))
    assert event.prompt_tokens > 0


def test_a_hard_budget_refuses_a_rerank_priced_per_search_unit(rerankers, gateway, upstream):
    billing_services.price_create(actor=gateway.ctx, provider="cohere", upstream_model="echo", currency="USD", input_per_m="0",
                                  output_per_m="0", per_search_unit="2")
    billing_services.budget_create(actor=gateway.ctx, scope="org", amount="3", period="month")
    gateway.key.refresh_from_db()
    upstream.reset()
    response = rerank(gateway, {"model": "rr-cohere", "query": QUERY, "documents": [f"doc {i}" for i in range(101)]})  # 2 units: 4 USD
    assert response.status_code == 429 and response.json()["error"]["code"] == "budget_exceeded"
    assert not upstream.ledger
    event = ledger_row(response.headers["x-request-id"])
    assert (event.endpoint, event.status_code, event.error_type) == ("rerank", 429, "budget_exceeded")
    assert rerank(gateway, {"model": "rr-cohere", "query": QUERY, "documents": DOCUMENTS}).status_code == 200  # 1 unit fits


@pytest.mark.parametrize("body, param", [
    ({"model": "rr-jina", "documents": ["a"]}, "query"),
    ({"model": "rr-jina", "query": " ", "documents": ["a"]}, "query"),
    ({"model": "rr-jina", "query": "q", "documents": []}, "documents"),
    ({"model": "rr-jina", "query": "q", "documents": "a"}, "documents"),
    ({"model": "rr-jina", "query": "q", "documents": ["a", {"title": "b"}]}, "documents[1]"),
    ({"model": "rr-jina", "query": "q", "documents": ["a"] * 1001}, "documents"),
    ({"model": "rr-jina", "query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
    ({"model": "rr-jina", "query": "q", "documents": ["a"], "return_documents": "yes"}, "return_documents"),
    ({"model": "rr-jina", "query": "q", "documents": ["a"], "rank_fields": ["x"]}, "rank_fields"),
    ({"query": "q", "documents": ["a"]}, "model"),
])
def test_bad_input_is_a_400_in_openai_shape(rerankers, gateway, upstream, body, param):
    upstream.reset()
    response = rerank(gateway, body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error" and not upstream.requests


def test_keys_models_and_wire_formats_are_enforced(rerankers, gateway, upstream):
    _, limited = key_services.virtual_key_create(actor=gateway.ctx, name="only chat", allowed_models=["gpt-test"])
    assert rerank(gateway, {"model": "rr-jina", "query": "q", "documents": ["a"]}, secret=limited).json()["error"]["code"] == "model_not_allowed"
    assert rerank(gateway, {"model": "rr-jina", "query": "q", "documents": ["a"]}, secret="tg-wrong").status_code == 401
    response = rerank(gateway, {"model": "gpt-test", "query": "q", "documents": ["a"]})  # an OpenAI-format deployment
    assert response.status_code == 400 and "rerank" in response.json()["error"]["message"]
    chat = httpx.post(gateway.base_url + "/chat/completions", json={"model": "rr-jina", "messages": [{"role": "user", "content": "Hi"}]},
                      headers={"authorization": f"Bearer {gateway.secret}"}, timeout=20)
    assert chat.status_code == 400  # a rerank-only deployment serves no chat
    assert httpx.get(gateway.base_url + "/rerank", headers={"authorization": f"Bearer {gateway.secret}"}).status_code == 405


def test_a_failing_provider_falls_back_to_the_next_deployment(rerankers, gateway, upstream):
    model = gateway.add_model("rr-fallback", "fail-500", credential=rerankers["cohere"])
    key_services.deployment_create(actor=gateway.ctx, model=model, credential=rerankers["jina"], upstream_model="echo", order=1)
    response = rerank(gateway, {"model": "rr-fallback", "query": QUERY, "documents": DOCUMENTS})
    assert response.status_code == 200 and response.json()["results"][0]["index"] == 1
    event = ledger_row(response.headers["x-request-id"])
    assert event.provider == "jina" and event.attempts >= 2 and event.attempt_trail[0]["status"] == 500
    upstream.reset()
    refused = rerank(gateway, {"model": "rr-cohere-400", "query": QUERY, "documents": DOCUMENTS})
    assert refused.status_code == 404  # no such model


def test_an_upstream_error_is_mapped_never_echoed(rerankers, gateway, upstream):
    gateway.add_model("rr-429", "fail-429", credential=rerankers["dashscope-rerank"])
    response = rerank(gateway, {"model": "rr-429", "query": QUERY, "documents": DOCUMENTS})
    assert response.status_code == 429 and response.json()["error"]["code"] == "upstream_rate_limited"
    assert "test-key" not in response.text and response.headers["retry-after"] == "1"


def test_idempotency_key_replays_without_a_second_call(rerankers, gateway, upstream):
    upstream.reset()
    body = {"model": "rr-jina", "query": QUERY, "documents": DOCUMENTS}
    first = rerank(gateway, body, headers={"idempotency-key": "rr-1"})
    second = rerank(gateway, body, headers={"idempotency-key": "rr-1"})
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    assert len(upstream.ledger) == 1


def test_the_demo_provider_reranks_locally_and_deterministically(gateway):
    credential = key_services.credential_create(actor=gateway.ctx, name="demo", provider="mock")
    gateway.add_model("demo-rerank", "demo-rerank", credential=credential)
    body = {"model": "demo-rerank", "query": QUERY, "documents": DOCUMENTS, "return_documents": True}
    first, second = rerank(gateway, body), rerank(gateway, body)
    assert first.status_code == 200 and first.json()["results"] == second.json()["results"]
    results = first.json()["results"]
    assert [r["index"] for r in results][0] == 1 and len(results) == 3 and results[0]["document"]["text"] == DOCUMENTS[1]
    event = ledger_row(first.headers["x-request-id"])
    assert (event.endpoint, event.usage_source, event.provider) == ("rerank", "provider", "mock") and event.prompt_tokens > 0


def test_the_key_rate_limit_and_the_body_cap_apply(rerankers, gateway, settings):
    too_big = {"model": "rr-jina", "query": "q", "documents": ["x" * 1024 * 1024] * 9}  # past the 8 MiB default
    response = rerank(gateway, too_big)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, rpm_limit=1)
    time.sleep(1.2)  # the change reaches the relay
    statuses = [rerank(gateway, {"model": "rr-jina", "query": QUERY, "documents": DOCUMENTS}).status_code for _ in range(3)]
    assert statuses[0] == 200 and 429 in statuses
