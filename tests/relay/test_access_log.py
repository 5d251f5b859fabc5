"""The /v1 access log (TOLLGATE_ACCESS_LOG): one line per request, written off the request path, with
the outcome, tokens and cost, and nothing secret."""

import json
import logging

import openai
import pytest

from config.logs import JsonFormatter
from relay.observers import AccessLog, ObservedSink, flush_observers
from tests.gateway import usage_record


@pytest.fixture
def access_log(relay_server):
    runtime = relay_server.relay.runtime
    observer = AccessLog()
    original = runtime.sink
    runtime.sink = ObservedSink(original, [observer])
    yield observer
    runtime.sink = original


def test_one_line_per_request_with_outcome_tokens_and_cost(gateway, access_log, caplog):
    from billing import services as billing_services

    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD", input_per_m="1", output_per_m="2")
    client = gateway.client()
    reply = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
    with caplog.at_level(logging.INFO, logger="tollgate.access"):
        flush_observers([access_log])
    lines = [r for r in caplog.records if r.name == "tollgate.access"]
    assert [(r.status_code, r.model_name) for r in lines] == [(200, "gpt-test"), (404, "nope")]
    ok = lines[0]
    assert (ok.organization_id, ok.key_id, ok.endpoint) == (gateway.org.pk, gateway.key.pk, "chat")
    assert ok.prompt_tokens == reply.usage.prompt_tokens and ok.completion_tokens == reply.usage.completion_tokens
    assert ok.cost and ok.currency == "USD" and ok.latency_ms >= 0
    assert lines[1].error_type == "model_not_found"

    entry = json.loads(JsonFormatter().format(ok))  # TOLLGATE_LOG_FORMAT=json: the fields are the line's keys
    assert entry["logger"] == "tollgate.access" and entry["request_id"] == ok.request_id and entry["status_code"] == 200
    text = "\n".join(JsonFormatter().format(r) for r in lines) + caplog.text
    assert gateway.secret not in text and "test-key" not in text  # neither the virtual key nor the provider's


def test_nothing_is_logged_on_the_request_path():
    """observe() only collects; the lines are written by flush (the background loop)."""
    log = AccessLog()
    handler_calls = []
    logger = logging.getLogger("tollgate.access")
    handler = logging.Handler()
    handler.emit = handler_calls.append
    logger.addHandler(handler)
    try:
        record = usage_record(request_id="req_1", status_code=200, endpoint="chat")
        log.observe(record)
        assert handler_calls == []
        logger.setLevel(logging.INFO)
        log.flush()
        assert len(handler_calls) == 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
