"""Native batches: the providers' own batch APIs (OpenAI's Files + Batches, Anthropic's Message Batches) on the
loopback mock, driven through Tollgate with the official openai SDK and a real Celery worker; each line billed
from its reported usage at the batch price (50%)."""

from decimal import Decimal

import httpx
import openai
import orjson
import pytest

from batches.models import Batch
from billing import services as billing_services
from billing.models import UsageEvent
from keys import services as key_services
from tests.batches.helpers import parse_jsonl
from tests.gateway import wait_for

# The mock's answer to "Summarise document N": prompt 6 tokens (3 words + 3), 10 output tokens.
# At 100 in / 1000 out per 1M: 0.0106 live, 0.0053 at the batch price.
LINE_COST = Decimal("0.0053")
NATIVE = {"tollgate_mode": "native"}


def _jsonl(count: int, models, *, max_tokens: int = 16) -> bytes:
    """Lines whose custom_ids are the client's own (not line numbers), cycling through `models`."""
    out = []
    for number in range(1, count + 1):
        body = {"model": models[(number - 1) % len(models)], "messages": [{"role": "user", "content": f"Summarise document {number}"}],
                "max_tokens": max_tokens}
        out.append(orjson.dumps({"custom_id": f"doc-{number:03d}-x", "method": "POST", "url": "/v1/chat/completions", "body": body}))
    return b"\n".join(out) + b"\n"


def _provider(gateway, upstream, settings, preset: str, models: dict[str, str], *, api_key="test-key"):
    """A credential on `preset` pointing at the mock, a model per name → upstream model, each priced 100/1000."""
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True
    base = upstream.url + ("/v1" if preset == "openai" else "")
    credential = key_services.credential_create(actor=gateway.ctx, name=f"{preset} batch {next(iter(models))}", provider=preset, base_url=base, api_key=api_key)
    for name, upstream_model in models.items():
        billing_services.price_create(actor=gateway.ctx, provider=preset, upstream_model=upstream_model, currency="USD",
                                      input_per_m="100", output_per_m="1000")
        gateway.add_model(name, upstream_model, credential=credential)
    return credential


def _finished(client, batch_id):
    batch = client.batches.retrieve(batch_id)
    return batch if batch.status in ("completed", "failed", "cancelled", "expired") else None


def _upstream_paths(upstream) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in upstream.requests]


def test_openai_native_batch_is_priced_at_the_batch_discount(gateway, upstream, batch_worker, settings):
    _provider(gateway, upstream, settings, "openai", {"gpt-native": "echo-b"})
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", _jsonl(100, ["gpt-native"])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=NATIVE)
    assert batch.tollgate["mode"] == "native" and batch.tollgate["native_provider"] == "openai"
    # The whole file's worst case is held from the start: 100 × (prompt bound × 100 + 16 × 1000) / 1M × 50%.
    held = Decimal(batch.tollgate["spent"])
    assert held >= 100 * Decimal("0.008")
    done = wait_for(lambda: _finished(client, batch.id), timeout=60, interval=0.3)
    assert done.status == "completed" and done.error_file_id is None
    assert done.request_counts.total == 100 and done.request_counts.completed == 100
    output = parse_jsonl(client.files.content(done.output_file_id).text)
    assert sorted(line["custom_id"] for line in output) == [f"doc-{n:03d}-x" for n in range(1, 101)]
    assert all(line["response"]["status_code"] == 200 and line["response"]["body"]["model"] == "gpt-native" for line in output)
    by_id = {line["custom_id"]: line for line in output}
    assert by_id["doc-007-x"]["response"]["body"]["usage"]["prompt_tokens"] == 6
    # The provider got the upstream model name, line-number custom_ids, one upload and one batch; no live calls.
    paths = _upstream_paths(upstream)
    assert paths.count("POST /v1/files") == 1 and paths.count("POST /v1/batches") == 1 and "POST /v1/chat/completions" not in paths
    sent = [orjson.loads(line) for line in next(iter(upstream.files.values())).splitlines()]
    assert {line["body"]["model"] for line in sent} == {"echo-b"} and sent[0]["custom_id"] == "line-1"
    upstream_batch = next(iter(upstream.batches.values()))
    assert upstream_batch["completion_window"] == "24h" and upstream_batch["endpoint"] == "/v1/chat/completions"
    # One ledger row per line, from the reported usage at 50%: exactly 100 × 0.0053.
    rows = UsageEvent.objects.filter(batch_id=batch.id)
    assert rows.count() == 100
    assert {row.usage_source for row in rows} == {"provider"} and {row.provider for row in rows} == {"openai"}
    assert {row.cost_display for row in rows} == {LINE_COST}
    ledger_total = sum(row.cost_display for row in rows)
    assert ledger_total == 100 * LINE_COST == Decimal("0.53")
    assert Decimal(done.tollgate["spent"]) == ledger_total  # the hold was replaced by the real cost
    assert {line["response"]["request_id"] for line in output} == set(rows.values_list("request_id", flat=True))
    print(f"\nnative batch figures: 100 lines, ledger {ledger_total} USD, expected 100 x 0.0106 x 50% = {100 * LINE_COST}, held {held}")


def test_anthropic_native_batch_with_failing_lines(gateway, upstream, batch_worker, settings):
    _provider(gateway, upstream, settings, "anthropic", {"claude-native": "claude-b", "claude-bad": "fail-400"})
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", _jsonl(6, ["claude-native", "claude-bad"])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=NATIVE)
    assert batch.tollgate["native_provider"] == "anthropic"
    done = wait_for(lambda: _finished(client, batch.id), timeout=60, interval=0.3)
    assert done.status == "completed" and done.request_counts.completed == 3 and done.request_counts.failed == 3
    output = parse_jsonl(client.files.content(done.output_file_id).text)
    errors = parse_jsonl(client.files.content(done.error_file_id).text)
    assert [line["custom_id"] for line in output] == ["doc-001-x", "doc-003-x", "doc-005-x"]
    assert [line["custom_id"] for line in errors] == ["doc-002-x", "doc-004-x", "doc-006-x"]
    # Answers come back in OpenAI's chat shape under the public model name; errors keep the provider's status.
    assert output[0]["response"]["body"]["object"] == "chat.completion"
    assert output[0]["response"]["body"]["choices"][0]["message"]["content"].startswith("Hello from")
    assert output[0]["response"]["body"]["model"] == "claude-native"
    assert {line["response"]["status_code"] for line in errors} == {400}
    assert {line["response"]["body"]["error"]["type"] for line in errors} == {"invalid_request_error"}
    # The provider got Messages params: the upstream model, max_tokens, line-number custom_ids.
    created = next(r for r in upstream.requests if r["path"] == "/v1/messages/batches" and r["method"] == "POST")["json"]
    assert created["requests"][0]["custom_id"] == "line-1"
    assert created["requests"][0]["params"]["model"] == "claude-b" and created["requests"][0]["params"]["max_tokens"] == 16
    rows = UsageEvent.objects.filter(batch_id=batch.id)
    assert rows.count() == 6
    priced = rows.exclude(cost_display=None)
    assert priced.count() == 3 and sum(row.cost_display for row in priced) == 3 * LINE_COST
    assert Decimal(done.tollgate["spent"]) == 3 * LINE_COST


def test_native_batch_refused_when_its_worst_case_passes_the_cap(gateway, upstream, batch_worker, settings):
    _provider(gateway, upstream, settings, "openai", {"gpt-native": "echo-b"})
    client = gateway.client()
    uploaded = client.files.create(file=("docs.jsonl", _jsonl(10, ["gpt-native"])), purpose="batch")
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
                              metadata={**NATIVE, "tollgate_cap": "0.02"})
    assert refused.value.code == "native_cap_exceeded" and "cannot be stopped" in refused.value.message
    # A cap is not a way around the key's hard budget: the worst case must fit what it has left too.
    budget = billing_services.budget_create(actor=gateway.ctx, scope="key", key=gateway.key, amount="0.05", name="key budget")
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
                              metadata={**NATIVE, "tollgate_cap": "0.2"})
    assert refused.value.code == "native_budget_exceeded" and "key budget" in refused.value.message
    billing_services.budget_delete(actor=gateway.ctx, budget=budget)
    # A cap that holds the worst case is fine (10 lines: 0.053 actual, below 0.1 worst case).
    accepted = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
                                     metadata={**NATIVE, "tollgate_cap": "0.2"})
    done = wait_for(lambda: _finished(client, accepted.id), timeout=60, interval=0.3)
    assert done.status == "completed" and Decimal(done.tollgate["spent"]) == 10 * LINE_COST
    assert _upstream_paths(upstream).count("POST /v1/batches") == 1  # the refused one never reached the provider


def test_native_batch_refused_with_the_reason(gateway, upstream, batch_worker, settings):
    client = gateway.client()
    headers = {"Authorization": f"Bearer {gateway.secret}"}
    # gpt-test is on a custom OpenAI-compatible credential: no batch API.
    uploaded = client.files.create(file=("docs.jsonl", _jsonl(2, ["gpt-test"])), purpose="batch")
    answer = httpx.post(f"{gateway.base_url}/batches", headers=headers, json={
        "input_file_id": uploaded.id, "endpoint": "/v1/chat/completions", "completion_window": "24h", "tollgate_mode": "native"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "native_batch_unavailable"
    assert "no batch API" in answer.json()["error"]["message"]
    # Two credentials for one file.
    _provider(gateway, upstream, settings, "openai", {"gpt-native": "echo-b"})
    _provider(gateway, upstream, settings, "anthropic", {"claude-native": "claude-b"})
    mixed = client.files.create(file=("docs.jsonl", _jsonl(2, ["gpt-native", "claude-native"])), purpose="batch")
    answer = httpx.post(f"{gateway.base_url}/batches", headers=headers, json={
        "input_file_id": mixed.id, "endpoint": "/v1/chat/completions", "completion_window": "24h", "metadata": NATIVE})
    assert answer.status_code == 400 and "one provider credential" in answer.json()["error"]["message"]
    answer = httpx.post(f"{gateway.base_url}/batches", headers=headers, json={
        "input_file_id": mixed.id, "endpoint": "/v1/chat/completions", "completion_window": "24h", "tollgate_mode": "fast"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "tollgate_mode"
    assert not [p for p in _upstream_paths(upstream) if "batches" in p or "files" in p]


def test_upstream_refusal_and_failed_upstream_batch_end_the_batch_failed(gateway, upstream, batch_worker, settings):
    _provider(gateway, upstream, settings, "openai", {"gpt-wrong-key": "echo-b"}, api_key="sk-wrong")
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", _jsonl(3, ["gpt-wrong-key"])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=NATIVE)
    done = wait_for(lambda: _finished(client, batch.id), timeout=60, interval=0.3)
    assert done.status == "failed" and "401" in done.errors.data[0].message
    errors = parse_jsonl(client.files.content(done.error_file_id).text)
    assert len(errors) == 3 and {line["error"]["code"] for line in errors} == {"native_batch_failed"}
    assert Decimal(done.tollgate["spent"]) == 0 and not UsageEvent.objects.filter(batch_id=batch.id).exists()
    # The provider takes the batch, then fails it.
    _provider(gateway, upstream, settings, "openai", {"gpt-broken": "batch-failed"})
    uploaded = client.files.create(file=("docs.jsonl", _jsonl(2, ["gpt-broken"])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=NATIVE)
    done = wait_for(lambda: _finished(client, batch.id), timeout=60, interval=0.3)
    assert done.status == "failed" and "does not exist" in done.errors.data[0].message
    assert Decimal(done.tollgate["spent"]) == 0


@pytest.mark.parametrize("preset", ["openai", "anthropic"])
def test_cancel_goes_to_the_provider_and_bills_what_ran(gateway, upstream, batch_worker, settings, preset):
    _provider(gateway, upstream, settings, preset, {"native-model": "echo-b"})
    upstream.batch_hold = True  # the provider keeps the batch in progress
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", _jsonl(4, ["native-model"])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=NATIVE)
    wait_for(lambda: Batch.objects.get(public_id=batch.id).native.get("upstream_id"), timeout=30, interval=0.2)
    with pytest.raises(openai.ConflictError):  # the provider runs it: no pause
        client.post(f"/batches/{batch.id}/pause", cast_to=object)
    assert client.batches.cancel(batch.id).status == "cancelling"
    done = wait_for(lambda: _finished(client, batch.id), timeout=60, interval=0.3)
    assert done.status == "cancelled"
    assert any(path.endswith("/cancel") for path in _upstream_paths(upstream))
    output = parse_jsonl(client.files.content(done.output_file_id).text)
    errors = parse_jsonl(client.files.content(done.error_file_id).text)
    assert [line["custom_id"] for line in output] == ["doc-001-x", "doc-002-x"]  # the mock ran half before it stopped
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"} and len(errors) == 2
    assert Decimal(done.tollgate["spent"]) == 2 * LINE_COST
    assert UsageEvent.objects.filter(batch_id=batch.id).exclude(cost_display=None).count() == 2


def test_other_organizations_never_see_or_use_a_native_batch(gateway, upstream, batch_worker, settings):
    from accounts.models import Role
    from accounts.tenancy import OrgContext
    from tests.accounts.factories import OrganizationFactory

    _provider(gateway, upstream, settings, "openai", {"gpt-native": "echo-b"})
    upstream.batch_hold = True
    client = gateway.client()
    uploaded = client.files.create(file=("docs.jsonl", _jsonl(2, ["gpt-native"])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=NATIVE)
    other = OrganizationFactory()
    _, other_secret = key_services.virtual_key_create(actor=OrgContext(organization=other, role=Role.OWNER, user=None), name="other")
    stranger = gateway.client(other_secret)
    for call in (lambda: stranger.batches.retrieve(batch.id), lambda: stranger.batches.cancel(batch.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    # Another organization's model names mean nothing to the stranger: no native batch on them.
    theirs = stranger.files.create(file=("docs.jsonl", _jsonl(2, ["gpt-native"])), purpose="batch")
    with pytest.raises(openai.BadRequestError) as refused:
        stranger.batches.create(input_file_id=theirs.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=NATIVE)
    assert refused.value.code == "native_batch_unavailable"
    assert Batch.objects.get(public_id=batch.id).status == "in_progress"


def test_the_batch_page_offers_the_native_run(gateway, upstream, batch_worker, settings, client):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from batches.models import BatchFile

    _provider(gateway, upstream, settings, "openai", {"gpt-native": "echo-b"})
    upstream.batch_hold = True  # in progress until the page was looked at
    client.force_login(gateway.ctx.user)

    def estimate(model):
        return client.post(reverse("batches"), {"key": gateway.key.pk, "kind": "jsonl", "mode": "native", "max_tokens": "16",
                                                "file": SimpleUploadedFile("docs.jsonl", _jsonl(3, [model]))})

    refused = estimate("gpt-test")  # a custom OpenAI-compatible credential: no batch API
    assert refused.status_code == 400 and "has no batch API" in refused.content.decode()
    page = estimate("gpt-native")
    assert page.status_code == 200 and 'id="batch-native"' in page.content.decode()
    source = BatchFile.objects.filter(organization=gateway.org).latest("created_at")
    started = client.post(reverse("batch_start"), {"key": gateway.key.pk, "file_id": source.public_id, "endpoint": "/v1/chat/completions",
                                                   "mode": "native"})
    batch = Batch.objects.get(organization=gateway.org, input_file=source)
    assert started.status_code == 302 and batch.mode == "native"
    detail = client.get(reverse("batch_detail", args=[batch.public_id])).content.decode()
    assert "the provider&#x27;s batch API" in detail.split('id="batch-mode"')[1][:80]
    assert 'id="batch-cancel"' in detail and 'id="batch-pause"' not in detail  # the provider runs it: cancel, no pause
    upstream.batch_hold = False
    wait_for(lambda: Batch.objects.get(pk=batch.pk).status == "completed", timeout=60, interval=0.3)
    assert Batch.objects.get(pk=batch.pk).spent == 3 * LINE_COST


def test_a_hostile_provider_is_not_believed(gateway, upstream, batch_worker, settings):
    """Result lines that are not JSON, name no line of ours, repeat a line or name one that does not exist are
    ignored; usage that cannot be true (a negative count) bills the line's worst case, never nothing."""
    _provider(gateway, upstream, settings, "openai", {"gpt-native": "echo-b"})
    upstream.batch_garbage = True
    upstream.usage_override = {"prompt_tokens": -5, "completion_tokens": 10, "total_tokens": 5}
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", _jsonl(3, ["gpt-native"])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=NATIVE)
    done = wait_for(lambda: _finished(client, batch.id), timeout=60, interval=0.3)
    assert done.status == "completed" and done.request_counts.completed == 3 and done.error_file_id is None
    output = parse_jsonl(client.files.content(done.output_file_id).text)
    assert [line["custom_id"] for line in output] == ["doc-001-x", "doc-002-x", "doc-003-x"]
    rows = UsageEvent.objects.filter(batch_id=batch.id)
    assert rows.count() == 3 and {row.usage_flags for row in rows} == {"batch_usage_missing"} and {row.usage_source for row in rows} == {"estimated"}
    # Billed at the worst case: the prompt bound and the 16-token ceiling at the batch price, more than the true 0.0053.
    assert all(row.cost_display > LINE_COST for row in rows) and all(row.completion_tokens == 16 for row in rows)
    assert Decimal(done.tollgate["spent"]) == sum(row.cost_display for row in rows)


def test_a_step_that_died_after_creating_does_not_create_twice(gateway, upstream, batch_worker, settings):
    """A step killed between OpenAI's create call and saving its id: the next step finds the provider's batch by
    the Tollgate batch id in its metadata and adopts it."""
    _provider(gateway, upstream, settings, "openai", {"gpt-native": "echo-b"})
    upstream.batch_hold = True
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", _jsonl(3, ["gpt-native"])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=NATIVE)
    stored = wait_for(lambda: (b := Batch.objects.get(public_id=batch.id)).native.get("upstream_id") and b, timeout=30, interval=0.2)
    upstream_id = stored.native["upstream_id"]
    Batch.objects.filter(pk=stored.pk).update(native={**stored.native, "upstream_id": ""})  # as if that save never happened
    upstream.batch_hold = False
    done = wait_for(lambda: _finished(client, batch.id), timeout=60, interval=0.3)
    assert done.status == "completed" and done.request_counts.completed == 3
    assert _upstream_paths(upstream).count("POST /v1/batches") == 1 and "GET /v1/batches" in _upstream_paths(upstream)
    assert Batch.objects.get(pk=stored.pk).native["upstream_id"] == upstream_id
    assert UsageEvent.objects.filter(batch_id=batch.id).count() == 3 and Decimal(done.tollgate["spent"]) == 3 * LINE_COST
