"""Pause, resume and cancel through the API with a real worker; the default cap from the key's budget; an
embeddings batch (any endpoint the relay serves)."""

from collections import Counter
from decimal import Decimal

import httpx
import orjson

from billing import services as billing_services
from billing.models import Budget
from tests.batches.helpers import chat_jsonl, parse_jsonl, sent_documents
from tests.gateway import wait_for


def _slow_model(gateway):
    """Answers in 0.4 s: a 120-line batch at 8 lines in flight runs ~6 s, so a pause or cancel sent after its
    first lines arrives mid-run on a fast machine as on a loaded one."""
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="slow-0.4", currency="USD",
                                  input_per_m="0", output_per_m="1000")
    gateway.add_model("gpt-slow", "slow-0.4")


def _post(gateway, path):
    response = httpx.post(f"{gateway.base_url}{path}", headers={"Authorization": f"Bearer {gateway.secret}"}, timeout=20)
    assert response.status_code == 200, response.text
    return response.json()


def _processed(batch):
    return batch.request_counts.completed + batch.request_counts.failed


def test_pause_stops_dispatching_and_resume_finishes_every_line_once(gateway, upstream, batch_worker):
    _slow_model(gateway)
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(120, model="gpt-slow")), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(lambda: _processed(client.batches.retrieve(batch.id)) >= 20, timeout=60, interval=0.1)
    paused = _post(gateway, f"/batches/{batch.id}/pause")
    assert paused["tollgate"]["paused"] is True and paused["status"] == "in_progress"
    # The run lets its lines in flight finish, then lets go of the batch: nothing more is sent.
    from batches.models import Batch

    wait_for(lambda: Batch.objects.get(public_id=batch.id).runner == "", timeout=30)
    held = client.batches.retrieve(batch.id)
    assert _processed(held) < 120 and len(sent_documents(upstream)) == _processed(held)
    resumed = _post(gateway, f"/batches/{batch.id}/resume")
    assert resumed["tollgate"]["paused"] is False
    done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "completed" and b, timeout=90, interval=0.3)
    assert done.request_counts.completed == 120 and done.error_file_id is None
    assert Counter(sent_documents(upstream)).most_common(1)[0][1] == 1 and len(sent_documents(upstream)) == 120


def test_cancel_sends_nothing_more_and_lists_the_rest(gateway, upstream, batch_worker):
    _slow_model(gateway)
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(150, model="gpt-slow")), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(lambda: _processed(client.batches.retrieve(batch.id)) >= 10, timeout=60, interval=0.1)
    assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled")
    done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "cancelled" and b, timeout=60, interval=0.3)
    errors = parse_jsonl(client.files.content(done.error_file_id).text)
    output = parse_jsonl(client.files.content(done.output_file_id).text)
    assert len(errors) + len(output) == 150 and len(output) < 150
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert len(sent_documents(upstream)) == len(output)  # cancelled lines were never sent


def test_default_cap_is_the_keys_remaining_budget(gateway, upstream, batch_worker):
    billing_services.budget_create(actor=gateway.ctx, scope=Budget.Scope.KEY, key=gateway.key, amount="0.10", name="key budget")
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(20)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert Decimal(batch.tollgate["cap"]) == Decimal("0.10") and batch.tollgate["cap_source"] == "key_budget"
    done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "completed" and b, timeout=90, interval=0.3)
    assert Decimal(done.tollgate["spent"]) <= Decimal("0.10")
    assert 1 <= done.request_counts.completed <= 10
    errors = parse_jsonl(client.files.content(done.error_file_id).text)
    assert {line["error"]["code"] for line in errors} == {"batch_cap_reached"}


def test_embeddings_batch(gateway, upstream, batch_worker):
    client = gateway.client(timeout=30)
    lines = b"".join(orjson.dumps({"custom_id": f"e{n}", "method": "POST", "url": "/v1/embeddings",
                                   "body": {"model": "gpt-test", "input": f"text {n}"}}) + b"\n" for n in range(5))
    uploaded = client.files.create(file=("emb.jsonl", lines), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "completed" and b, timeout=90, interval=0.3)
    output = parse_jsonl(client.files.content(done.output_file_id).text)
    assert len(output) == 5 and all(line["response"]["body"]["data"][0]["embedding"] for line in output)


def test_bad_requests_get_openai_errors(gateway, batch_worker):
    headers = {"Authorization": f"Bearer {gateway.secret}"}
    response = httpx.post(f"{gateway.base_url}/batches", headers=headers, json={"input_file_id": "file-nope", "endpoint": "/v1/chat/completions",
                                                                               "completion_window": "24h"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = httpx.post(f"{gateway.base_url}/batches", headers=headers, content=b"[", timeout=10)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    client = gateway.client()
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(1)), purpose="batch")
    response = httpx.post(f"{gateway.base_url}/batches", headers=headers, json={
        "input_file_id": uploaded.id, "endpoint": "/v1/chat/completions", "completion_window": "24h", "metadata": {"tollgate_cap": "-1"}})
    assert response.status_code == 400 and response.json()["error"]["param"] == "tollgate_cap"
    response = httpx.post(f"{gateway.base_url}/files", headers=headers, files={"file": ("a.jsonl", b"{}")}, data={"purpose": "fine-tune"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "purpose"


def test_warm_shutdown_hands_the_batch_over_with_nothing_interrupted(gateway, upstream, batch_worker, tmp_path):
    from batches.models import Batch
    from tests.batches.conftest import BATCH_WORKER_ENV
    from tests.faults.helpers import Worker

    _slow_model(gateway)
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(150, model="gpt-slow")), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(lambda: _processed(client.batches.retrieve(batch.id)) >= 20, timeout=60, interval=0.1)
    batch_worker.stop()  # SIGTERM: the run finishes its lines in flight and lets go, without waiting for the batch
    assert batch_worker.process.returncode is not None
    assert Batch.objects.get(public_id=batch.id).runner == "" and _processed(client.batches.retrieve(batch.id)) < 150
    successor = Worker(tmp_path, env=BATCH_WORKER_ENV, name="successor")
    try:
        done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "completed" and b, timeout=120, interval=0.3)
    finally:
        successor.kill()
    assert done.request_counts.completed == 150 and done.error_file_id is None
    assert len(sent_documents(upstream)) == 150 and len(set(sent_documents(upstream))) == 150


def test_a_cap_on_an_unpriced_model_is_refused(gateway):
    """No price for the model: its cost cannot be held against a cap (as under a hard budget)."""
    client = gateway.client()
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(2)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  extra_body={"tollgate_cap": "1.00"})
    assert batch.status == "failed" and batch.errors.data[0].code == "cap_unenforceable"
    assert batch.tollgate["estimate_complete"] is False
