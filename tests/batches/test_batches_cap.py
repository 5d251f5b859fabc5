"""The issue's measurement: a 1,000-line batch whose cap affords about 600 lines, run to completion, and
the same with the worker killed (SIGKILL) twice mid-batch. Spend never passes the cap, every affordable
line is answered exactly once, and every other line is in the error file, marked with its reason."""

from collections import Counter
from decimal import Decimal

import pytest

from batches.models import BatchLine
from billing import services as billing_services
from billing.models import UsageEvent
from tests.batches.conftest import BATCH_WORKER_ENV
from tests.batches.helpers import chat_jsonl, parse_jsonl, sent_documents
from tests.faults.helpers import Worker
from tests.gateway import drain_usage, wait_for

LINES = 1000
CAP = Decimal("6.00")  # each answer costs 0.01 (10 output tokens at 1000 per 1M); a line's worst case is 0.016
ANSWER_COST = Decimal("0.01")


def _counts(client, batch_id):
    batch = client.batches.retrieve(batch_id)
    return batch, batch.request_counts.completed + batch.request_counts.failed


def _run(gateway, model: str):
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(LINES, model=model)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"tollgate_cap": str(CAP)})
    assert batch.tollgate["cap"] == "6" and batch.tollgate["cap_source"] == "given"
    assert Decimal(batch.tollgate["estimate"]) == Decimal("16.00")  # the whole file at max_tokens: over the cap
    return client, batch


def _check(client, upstream, batch_id, report):
    done = client.batches.retrieve(batch_id)
    assert done.status == "completed"
    output = parse_jsonl(client.files.content(done.output_file_id).text)
    errors = parse_jsonl(client.files.content(done.error_file_id).text)
    answered = [line["custom_id"] for line in output]
    failed = [line["custom_id"] for line in errors]
    # No line lost: each is in exactly one file.
    assert len(answered) + len(failed) == LINES and len(set(answered) | set(failed)) == LINES
    reasons = Counter(line["error"]["code"] for line in errors)
    assert set(reasons) <= {"batch_cap_reached", "batch_line_interrupted"}
    # No line sent twice, and each answered line was sent (exactly once).
    sent = Counter(sent_documents(upstream))
    assert max(sent.values()) == 1
    assert all(sent[f"Summarise document {cid.split('-')[1]}"] == 1 for cid in answered)
    # Spend never passes the cap: what the upstream was asked to answer, and what the batch counted.
    upstream_spend = len(sent) * ANSWER_COST
    assert upstream_spend <= CAP and Decimal(done.tollgate["spent"]) <= CAP
    # The cap stopped the batch near what it affords (the last lines' worst case no longer fits).
    assert 560 <= len(answered) <= 600
    # Each line answered in a run has its ledger row committed with its answer, before the stream is drained and
    # whatever the killed workers had buffered: none is lost. (A line in flight at a kill whose stored answer the
    # next run replayed has no cost of its own, its worst case held: its row went with the killed worker.)
    rows = UsageEvent.objects.filter(batch_id=batch_id, status_code=200)
    settled = BatchLine.objects.filter(batch__public_id=batch_id, state=BatchLine.State.DONE)
    charged_ids = set(settled.exclude(cost=None).values_list("request_id", flat=True))
    replayed = settled.filter(cost=None).count()
    assert len(charged_ids) + replayed == len(answered)
    assert charged_ids <= set(rows.values_list("request_id", flat=True))
    drain_usage()
    # Beside them, at most the rows of lines a kill caught in flight (interrupted, or answered by a replay).
    assert rows.count() <= len(answered) + reasons["batch_line_interrupted"]
    ledger_spend = sum(row.cost_display for row in rows)
    assert ledger_spend <= CAP
    report.update(answered=len(answered), replayed=replayed, cap_reached=reasons["batch_cap_reached"], interrupted=reasons["batch_line_interrupted"],
                  upstream_requests=len(sent), upstream_spend=str(upstream_spend), batch_spent=done.tollgate["spent"],
                  ledger_rows=rows.count(), ledger_spend=str(ledger_spend))
    print("\nbatch figures:", report)


def test_capped_batch_of_1000_lines(gateway, upstream, batch_worker):
    client, batch = _run(gateway, "gpt-test")
    wait_for(lambda: client.batches.retrieve(batch.id).status == "completed", timeout=240, interval=0.5)
    report = {}
    _check(client, upstream, batch.id, report)
    assert report["interrupted"] == 0 and report["answered"] + report["cap_reached"] == LINES


@pytest.mark.slow
def test_capped_batch_survives_two_worker_kills(gateway, upstream, batch_worker, tmp_path):
    # A slower upstream (50 ms an answer) so that each kill lands mid-batch.
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="slow-0.05", currency="USD",
                                  input_per_m="0", output_per_m="1000")
    gateway.add_model("gpt-slow", "slow-0.05")
    client, batch = _run(gateway, "gpt-slow")
    workers = [batch_worker]
    for threshold, name in ((150, "second"), (350, "third")):
        wait_for(lambda: _counts(client, batch.id)[1] >= threshold, timeout=180, interval=0.2)
        workers[-1].kill()  # SIGKILL, lines in flight
        workers.append(Worker(tmp_path, env=BATCH_WORKER_ENV, name=name))
    try:
        wait_for(lambda: client.batches.retrieve(batch.id).status == "completed", timeout=300, interval=0.5)
        report = {"kills": 2}
        _check(client, upstream, batch.id, report)
    finally:
        for worker in workers[1:]:
            worker.kill()
