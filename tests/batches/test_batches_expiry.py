"""A batch's completion window (24h, as OpenAI's): past `expires_at` nothing more is sent, the batch ends
`expired` with every line not answered in the error file as `batch_expired`, and its spend is settled. The
window's end is moved to now in the database (the clock a test can move) instead of waiting 24 hours."""

from datetime import timedelta
from decimal import Decimal

import httpx
from django.utils import timezone

from batches.models import Batch
from billing import services as billing_services
from billing.models import UsageEvent
from tests.batches.helpers import chat_jsonl, parse_jsonl, sent_documents
from tests.gateway import drain_usage, wait_for

ANSWER_COST = Decimal("0.01")


def _slow_model(gateway):
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="slow-0.4", currency="USD",
                                  input_per_m="0", output_per_m="1000")
    gateway.add_model("gpt-slow", "slow-0.4")


def _processed(batch):
    return batch.request_counts.completed + batch.request_counts.failed


def _expire_now(batch_id):
    Batch.objects.filter(public_id=batch_id).update(expires_at=timezone.now())


def _check_expired(client, upstream, done, lines):
    assert done.status == "expired" and done.expired_at is not None
    output = parse_jsonl(client.files.content(done.output_file_id).text) if done.output_file_id else []
    errors = parse_jsonl(client.files.content(done.error_file_id).text)
    assert len(output) + len(errors) == lines and 0 < len(errors) < lines
    assert {line["error"]["code"] for line in errors} == {"batch_expired"} and all(line["response"] is None for line in errors)
    assert (done.request_counts.completed, done.request_counts.failed) == (len(output), len(errors))
    # Nothing was sent past the window: the upstream saw exactly the answered lines.
    assert sorted(sent_documents(upstream)) == sorted(f"Summarise document {line['custom_id'].split('-')[1]}" for line in output)
    # Spend settled: the batch counts each answer's cost, and so does the ledger.
    assert Decimal(done.tollgate["spent"]) == len(output) * ANSWER_COST
    drain_usage()
    rows = UsageEvent.objects.filter(batch_id=done.id)
    wait_for(lambda: (drain_usage(), rows.count() == len(output))[1], timeout=30)
    assert sum(row.cost_display for row in rows) == len(output) * ANSWER_COST
    return output, errors


def test_a_batch_expires_at_the_end_of_its_window(gateway, upstream, batch_worker):
    _slow_model(gateway)
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(150, model="gpt-slow")), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.expires_at - batch.created_at == 24 * 3600
    wait_for(lambda: _processed(client.batches.retrieve(batch.id)) >= 10, timeout=60, interval=0.1)
    _expire_now(batch.id)
    done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "expired" and b, timeout=60, interval=0.3)
    _check_expired(client, upstream, done, 150)
    # Sending nothing more: the runner let go, and the sweep does not start another run.
    assert Batch.objects.get(public_id=batch.id).runner == ""


def test_the_sweep_expires_a_paused_batch_past_its_window(gateway, upstream, batch_worker):
    _slow_model(gateway)
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(120, model="gpt-slow")), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(lambda: _processed(client.batches.retrieve(batch.id)) >= 10, timeout=60, interval=0.1)
    paused = httpx.post(f"{gateway.base_url}/batches/{batch.id}/pause", headers={"Authorization": f"Bearer {gateway.secret}"}, timeout=20)
    assert paused.status_code == 200 and paused.json()["tollgate"]["paused"] is True
    wait_for(lambda: Batch.objects.get(public_id=batch.id).runner == "", timeout=30)  # the run lets go: nothing runs it now
    assert client.batches.retrieve(batch.id).status == "in_progress"
    Batch.objects.filter(public_id=batch.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    # No one resumes it: the beat's sweep (every second in these tests) finds it past its window and closes it.
    done = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status == "expired" and b, timeout=60, interval=0.3)
    _check_expired(client, upstream, done, 120)



def test_a_batch_left_in_flight_by_a_killed_worker_expires_without_sending_again(gateway, upstream, monkeypatch):
    """A run that finds the batch past its window sends nothing, not even the lines a killed worker left in
    flight (`sent`): those may have been answered and charged, so they are interrupted with their worst case
    held, and the pending ones are `batch_expired`."""
    import asyncio

    from batches import services
    from batches.models import BatchLine
    from batches.runner import BatchRunner
    from tests.faults.helpers import price_echo

    price_echo(gateway)
    client = gateway.client()
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(4)), purpose="batch")
    monkeypatch.setattr(services, "_enqueue", lambda batch_pk: None)  # no worker here: this test runs the batch itself
    batch = services.batch_create(key=gateway.key, input_file_id=uploaded.id, endpoint="/v1/chat/completions")
    lines = list(batch.lines.order_by("number"))
    BatchLine.objects.filter(pk=lines[0].pk).update(state=BatchLine.State.DONE, status_code=200, response={"ok": True}, cost=ANSWER_COST)
    BatchLine.objects.filter(pk=lines[1].pk).update(state=BatchLine.State.SENT, sent_at=timezone.now())  # the killed worker's
    Batch.objects.filter(pk=batch.pk).update(completed=1, spent=ANSWER_COST, runner="dead:1", heartbeat_at=timezone.now() - timedelta(minutes=5),
                                             expires_at=timezone.now() - timedelta(seconds=1))
    assert asyncio.run(BatchRunner(batch.pk).run()) == "expired"
    done = Batch.objects.get(pk=batch.pk)
    assert (done.status, done.completed, done.failed) == (Batch.Status.EXPIRED, 1, 3) and done.expired_at is not None
    codes = {line.custom_id: (line.error or {}).get("code") for line in done.lines.all()}
    assert codes == {"line-1": None, "line-2": "batch_line_interrupted", "line-3": "batch_expired", "line-4": "batch_expired"}
    assert upstream.requests == []
    # Spend settled: the answered line's cost, and the interrupted line's worst case (16 output tokens at 1000 per 1M).
    assert done.spent == ANSWER_COST and done.held == Decimal("0.016")
    assert client.batches.retrieve(batch.public_id).tollgate["spent"] == "0.026"
