"""The Files and Batches API through the official openai SDK, run by a real Celery worker through the relay."""

from decimal import Decimal

import pytest

from billing.models import UsageEvent
from tests.batches.helpers import chat_jsonl, parse_jsonl, sent_documents
from tests.gateway import drain_usage, wait_for


def _finished(client, batch_id):
    batch = client.batches.retrieve(batch_id)
    return batch if batch.status in ("completed", "failed", "cancelled") else None


def test_sdk_batch_runs_every_line_once_and_keeps_the_ledger(gateway, upstream, batch_worker):
    client = gateway.client(timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(20)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"project": "rag-eval"})
    # The estimate is there before anything runs: 20 lines × 16 output tokens at 1000 per 1M.
    assert Decimal(batch.tollgate["estimate"]) == Decimal("0.32")
    done = wait_for(lambda: _finished(client, batch.id), timeout=90)
    assert done.status == "completed"
    assert done.request_counts.total == 20 and done.request_counts.completed == 20 and done.request_counts.failed == 0
    assert done.error_file_id is None
    output = parse_jsonl(client.files.content(done.output_file_id).text)
    assert sorted(line["custom_id"] for line in output) == sorted(f"line-{n}" for n in range(1, 21))
    assert all(line["response"]["status_code"] == 200 and line["response"]["body"]["choices"] for line in output)
    assert sorted(sent_documents(upstream)) == sorted(f"Summarise document {n}" for n in range(1, 21))
    assert Decimal(done.tollgate["spent"]) == Decimal("0.20") and done.tollgate["would_have_cost"] is None  # not a sandbox batch
    # Every line is in the ledger, with the batch id, under the key.
    drain_usage()
    rows = UsageEvent.objects.filter(batch_id=batch.id)
    assert wait_for(lambda: rows.count() == 20, timeout=30)
    assert {row.key_id for row in rows} == {gateway.key.pk}
    assert sum(row.cost_display for row in rows) == Decimal("0.20")
    assert {line["response"]["request_id"] for line in output} == set(rows.values_list("request_id", flat=True))
    listed = client.batches.list()
    assert [b.id for b in listed.data] == [batch.id]


def test_invalid_file_gives_a_failed_batch_with_line_errors(gateway, batch_worker):
    client = gateway.client()
    bad = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-test"}}\nnot json\n'
    uploaded = client.files.create(file=("bad.jsonl", bad), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.status == "failed"
    assert batch.errors.data[0].line == 2 and batch.errors.data[0].code == "invalid_json_line"


def test_other_organizations_never_see_files_or_batches(gateway, batch_worker):
    import openai

    from accounts.models import Role
    from accounts.tenancy import OrgContext
    from keys import services as key_services
    from tests.accounts.factories import OrganizationFactory

    client = gateway.client()
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(2)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    other = OrganizationFactory()
    _, other_secret = key_services.virtual_key_create(actor=OrgContext(organization=other, role=Role.OWNER, user=None), name="other")
    stranger = gateway.client(other_secret)
    for call in (lambda: stranger.files.retrieve(uploaded.id), lambda: stranger.files.content(uploaded.id),
                 lambda: stranger.batches.retrieve(batch.id), lambda: stranger.batches.cancel(batch.id),
                 lambda: stranger.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")):
        with pytest.raises(openai.NotFoundError):
            call()
    assert stranger.batches.list().data == [] and stranger.files.list().data == []
    with pytest.raises(openai.AuthenticationError):
        gateway.client("sk-not-a-key").batches.list()


def test_a_sandbox_batch_shows_what_it_would_have_cost(gateway, upstream, batch_worker):
    """A sandbox key's batch is charged nothing; its `tollgate.would_have_cost` is the ledger's sum of what its
    lines would have cost (Decimal, exact), and nothing reached the upstream."""
    from keys import services as key_services

    _, secret = key_services.virtual_key_create(actor=gateway.ctx, name="sandbox", user=gateway.ctx.user, sandbox=True)
    client = gateway.client(secret, timeout=30)
    uploaded = client.files.create(file=("docs.jsonl", chat_jsonl(6)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.tollgate["would_have_cost"] is None  # nothing ran yet
    done = wait_for(lambda: _finished(client, batch.id), timeout=90)
    assert done.status == "completed" and done.request_counts.completed == 6
    assert Decimal(done.tollgate["spent"]) == 0 and sent_documents(upstream) == []
    rows = UsageEvent.objects.filter(batch_id=batch.id)
    wait_for(lambda: (drain_usage(), rows.count() == 6)[1], timeout=30)
    expected = sum(row.would_have_cost for row in rows)
    assert all(row.sandbox and row.cost == 0 for row in rows) and expected > 0
    assert Decimal(client.batches.retrieve(batch.id).tollgate["would_have_cost"]) == expected
