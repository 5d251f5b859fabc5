"""Inside the runner, a batch's lines meet the key's limits and the model's routing policy as live traffic
does: they are spaced to the key's RPM (none refused), and an upstream 429 is retried and falls back as
the model's policy says (the mock upstream's `fail-429` answers 429 with Retry-After: 1)."""

from collections import Counter

import orjson

from batches.models import BatchLine
from billing.models import UsageEvent
from keys import services as key_services
from tests.batches.helpers import chat_jsonl, parse_jsonl, sent_documents
from tests.gateway import drain_usage, wait_for

RPM = 120  # a line every 0.5 s


def _finished(client, batch_id):
    batch = client.batches.retrieve(batch_id)
    return batch if batch.status in ("completed", "failed", "cancelled", "expired") else None


def test_a_batch_keeps_to_the_keys_rpm(gateway, upstream, batch_worker):
    key_services.virtual_key_update(actor=gateway.ctx, key=gateway.key, rpm_limit=RPM)
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(20)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = wait_for(lambda: _finished(client, batch.id), timeout=120, interval=0.3)
    assert done.status == "completed" and done.request_counts.completed == 20 and done.error_file_id is None
    # None refused: every line was admitted at its first try and answered once.
    assert len(sent_documents(upstream)) == 20 and len(set(sent_documents(upstream))) == 20
    drain_usage()
    rows = UsageEvent.objects.filter(key_id=gateway.key.pk)
    wait_for(lambda: (drain_usage(), rows.filter(batch_id=batch.id).count() == 20)[1], timeout=30)
    assert set(rows.values_list("status_code", flat=True)) == {200}
    # Spread: 20 lines at 120 a minute take 19 intervals of 0.5 s (8 could be in flight at once: without the
    # pacing they all leave within a fraction of a second). A small allowance for the thread that stamps them.
    sent = sorted(BatchLine.objects.filter(batch__public_id=batch.id).values_list("sent_at", flat=True))
    assert (sent[-1] - sent[0]).total_seconds() >= 19 * 60 / RPM - 0.5
    assert max(sum(1 for at in sent if 0 <= (at - start).total_seconds() < 1) for start in sent) <= 3


def _line(custom_id: str, model: str) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": f"Summarise {custom_id}"}], "max_tokens": 16}
    return orjson.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}) + b"\n"


def _model(gateway, name: str, upstream_models: list[str], **policy):
    model = key_services.model_create(actor=gateway.ctx, name=name, cooldown_failures=100, **policy)
    for order, upstream_model in enumerate(upstream_models):  # the first takes the traffic, the others are its fallbacks
        key_services.deployment_create(actor=gateway.ctx, model=model, credential=gateway.credential, upstream_model=upstream_model,
                                       weight=int(order == 0), order=order)


def test_an_upstream_429_is_retried_and_falls_back_by_the_models_policy(gateway, upstream, batch_worker):
    # Two tries at the deployment that answers 429, then the next deployment.
    _model(gateway, "flaky", ["fail-429", "echo"], retries_per_deployment=1, max_attempts=3)
    # Its only deployment answers 429: the fallback model answers.
    _model(gateway, "crowded", ["fail-429"], fallback_models=["gpt-test"])
    # 429 and nowhere to go: the line fails with the upstream's 429 after its policy's attempts, not retried forever.
    _model(gateway, "stuck", ["fail-429"], retries_per_deployment=1, max_attempts=2)
    content = b"".join(_line(f"{model}-{n}", model) for model in ("flaky", "crowded", "stuck") for n in range(3))
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("mixed.jsonl", content), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = wait_for(lambda: _finished(client, batch.id), timeout=120, interval=0.3)
    assert done.status == "completed" and (done.request_counts.completed, done.request_counts.failed) == (6, 3)
    output = {line["custom_id"]: line for line in parse_jsonl(client.files.content(done.output_file_id).text)}
    errors = {line["custom_id"]: line for line in parse_jsonl(client.files.content(done.error_file_id).text)}
    assert sorted(output) == sorted(f"{m}-{n}" for m in ("flaky", "crowded") for n in range(3))
    assert all(line["response"]["status_code"] == 200 and line["response"]["body"]["choices"] for line in output.values())
    assert sorted(errors) == [f"stuck-{n}" for n in range(3)]
    assert all(line["response"]["status_code"] == 429 and line["response"]["body"]["error"]["code"] == "upstream_rate_limited"
               for line in errors.values())
    # What the upstream saw, per line: the policy's attempts, then the deployment that answered.
    tried = Counter((r["json"]["messages"][-1]["content"].split()[-1], r["json"]["model"]) for r in upstream.requests if r.get("json"))
    for n in range(3):
        assert (tried[(f"flaky-{n}", "fail-429")], tried[(f"flaky-{n}", "echo")]) == (2, 1)
        assert (tried[(f"crowded-{n}", "fail-429")], tried[(f"crowded-{n}", "echo")]) == (1, 1)
        assert (tried[(f"stuck-{n}", "fail-429")], tried[(f"stuck-{n}", "echo")]) == (2, 0)
    drain_usage()
    rows = UsageEvent.objects.filter(batch_id=batch.id)
    wait_for(lambda: (drain_usage(), rows.count() == 9)[1], timeout=30)
    assert sorted(row.attempts for row in rows) == [2, 2, 2, 2, 2, 2, 3, 3, 3]
