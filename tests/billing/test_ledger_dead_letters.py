"""One bad usage record never holds up the others: it is parked with its reason, the rest is ingested.

Runs on both databases (PostgreSQL's typed bulk insert, SQLite's ORM insert), through billing.ledger's own
ingest and, with Redis, through the stream drain (entries acknowledged, nothing left pending).
"""

import logging
from datetime import datetime, timezone as dt_timezone

import orjson
import pytest
from django.conf import settings
from django.core import mail
from django.core.cache import cache
from django.db.models import Sum

from accounts.models import User
from billing import ledger
from billing.models import UsageDeadLetter, UsageEvent, UsageRollup
from config.celery import app as celery_app
from tests.accounts.factories import OrganizationFactory
from tests.billing.factories import usage_record

AT = datetime(2026, 3, 2, 10, 30, tzinfo=dt_timezone.utc)


@pytest.fixture(autouse=True)
def eager_celery():
    previous = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = celery_app.conf.task_eager_propagates = True
    cache.delete(ledger.DEAD_LETTER_ALERT_KEY)
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous
    cache.delete(ledger.DEAD_LETTER_ALERT_KEY)


@pytest.fixture
def two_orgs(transactional_db):
    return OrganizationFactory(), OrganizationFactory()


def mixed_batch(org_a, org_b):
    good = [usage_record(organization=org, at=AT, completion_tokens=10) for org in (org_a, org_b, org_a, org_b, org_a)]
    huge = usage_record(organization=org_a, at=AT, prompt_tokens=2**40)
    negative = usage_record(organization=org_b, at=AT, completion_tokens=-5, cached_tokens=-1)
    garbage = usage_record(organization=org_a, at=AT)
    garbage["status_code"] = {"not": "a status"}
    records = [good[0], huge, good[1], good[2], negative, good[3], garbage, good[4]]
    return records, good, {huge["request_id"]: "prompt_tokens", negative["request_id"]: "cached_tokens", garbage["request_id"]: "status_code"}


def rollup_requests(org) -> int:
    return UsageRollup.objects.filter(organization=org, grain="hour").aggregate(n=Sum("requests"))["n"] or 0


def test_bad_records_are_parked_and_the_rest_of_the_batch_is_ingested(two_orgs, caplog):
    org_a, org_b = two_orgs
    records, good, bad = mixed_batch(org_a, org_b)
    sources = [f"1700000000000-{i}" for i in range(len(records))]
    with caplog.at_level(logging.ERROR, logger="billing.ledger"):
        assert ledger.usage_ingest(records, sources=sources) == len(good)

    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {r["request_id"] for r in good}
    assert (rollup_requests(org_a), rollup_requests(org_b)) == (3, 2)
    letters = {letter.request_id: letter for letter in UsageDeadLetter.objects.all()}
    assert set(letters) == set(bad)
    for request_id, field in bad.items():
        letter = letters[request_id]
        assert letter.reason.startswith(f"{field}: "), letter.reason
        assert orjson.loads(letter.record)["request_id"] == request_id  # kept as it came
        assert letter.stream_entry == sources[[r["request_id"] for r in records].index(request_id)]
    assert letters[next(iter(bad))].organization_id == org_a.pk
    # The operator is told: one ERROR line with the ids and reasons.
    assert any(rec.levelno == logging.ERROR and all(rid in rec.getMessage() for rid in bad) for rec in caplog.records)

    # Retried (a crash before the acknowledgement): the good rows are not counted twice, nor the bad parked twice.
    assert ledger.usage_ingest(records, sources=sources) == 0
    assert (rollup_requests(org_a), rollup_requests(org_b)) == (3, 2)
    assert UsageDeadLetter.objects.count() == len(bad)


def test_a_record_the_checks_miss_is_isolated_by_the_database(two_orgs, monkeypatch):
    """Should a record pass the checks and still be refused, the batch is split until that record is alone."""
    org_a, org_b = two_orgs
    monkeypatch.setattr(ledger, "record_problem", lambda record: None)
    good = [usage_record(organization=org, at=AT) for org in (org_a, org_b) * 4]
    refused = usage_record(organization=org_b, at=AT, completion_tokens=-5)  # the column's CHECK refuses it
    records = good[:5] + [refused] + good[5:]
    assert ledger.usage_ingest(records) == len(good)
    assert UsageEvent.objects.count() == len(good)
    assert (rollup_requests(org_a), rollup_requests(org_b)) == (4, 4)
    letter = UsageDeadLetter.objects.get()
    assert letter.request_id == refused["request_id"] and letter.reason.startswith("refused by the database: ")


@pytest.mark.parametrize("record, reason", [
    ("not a dict", "not a record"),
    ({"organization_id": 1, "status_code": 200, "created_at": 1.0}, "request_id: missing"),
    ({"request_id": "r", "organization_id": "1", "status_code": 200, "created_at": 1.0}, "organization_id: not an integer"),
    ({"request_id": "r", "organization_id": 1, "status_code": 200, "created_at": float("nan")}, "created_at: not a time"),
    ({"request_id": "r" * 65, "organization_id": 1, "status_code": 200, "created_at": 1.0}, "request_id: longer than 64"),
    ({"request_id": "r", "organization_id": 1, "status_code": 200, "created_at": 1.0, "model_name": "a\x00b"}, "model_name: contains a NUL"),
    ({"request_id": "r", "organization_id": 1, "status_code": 200, "created_at": 1.0, "cost_display": "-0.5"}, "cost_display: '-0.5' is out of range"),
    ({"request_id": "r", "organization_id": 1, "status_code": 200, "created_at": 1.0, "cost": "1e12"}, "cost: '1e12' is out of range"),
    ({"request_id": "r", "organization_id": 1, "status_code": 200, "created_at": 1.0, "stream": 1}, "stream: not a boolean"),
    ({"request_id": "r", "organization_id": 1, "status_code": 200, "created_at": 1.0, "prompt_tokens": 1.5}, "prompt_tokens: not an integer"),
    ({"request_id": "r", "organization_id": 1, "status_code": 200, "created_at": 1.0, "attempt_trail": "x"}, "attempt_trail: not a list"),
])
def test_record_checks_name_the_field_and_the_problem(record, reason):
    assert ledger.record_problem(record).startswith(reason)


def test_a_good_record_passes_the_checks(two_orgs):
    record = usage_record(organization=two_orgs[0], at=AT, team_id=2**40, deployment_id=2**62, cost_display="9999999999.123456789012")
    assert ledger.record_problem({**record, "extra": {"any": "thing"}}) is None  # big ids are BigIntegerFields


def test_operators_get_one_email_an_hour(two_orgs, settings):
    org_a, org_b = two_orgs
    settings.ADMINS = [("Ops", "ops@example.com")]
    User.objects.create_superuser(email="root@example.com", password="correct-horse-battery")
    for _ in range(3):
        ledger.usage_ingest([usage_record(organization=org_a, at=AT), usage_record(organization=org_b, at=AT, prompt_tokens=-1)])
    assert UsageDeadLetter.objects.count() == 3
    assert len(mail.outbox) == 1  # at most hourly, however many batches park records
    assert set(mail.outbox[0].to) == {"ops@example.com", "root@example.com"}
    assert "usagedeadletter" in mail.outbox[0].body


@pytest.mark.skipif(not settings.REDIS_URL, reason="the stream needs Redis")
def test_the_drain_parks_bad_records_and_acknowledges_their_entries(two_orgs):
    import redis

    org_a, org_b = two_orgs
    records, good, bad = mixed_batch(org_a, org_b)
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        ledger.usage_drain(client)  # whatever an earlier test left
        UsageDeadLetter.objects.all().delete()
        first = client.xadd(ledger.STREAM, {"b": orjson.dumps(records[:4])})
        client.xadd(ledger.STREAM, {"b": b"[{not json"})
        client.xadd(ledger.STREAM, {"b": orjson.dumps(records[4:])})
        backlog = ledger.usage_backlog(client)
        assert backlog["waiting"] == 3 and backlog["oldest_age_seconds"] is not None
        assert ledger.usage_drain(client) == len(records) + 1
        assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {r["request_id"] for r in good}
        assert (rollup_requests(org_a), rollup_requests(org_b)) == (3, 2)
        letters = UsageDeadLetter.objects.all()
        assert len(letters) == 4 and {letter.request_id for letter in letters} == {*bad, ""}
        assert letters.get(request_id="").reason.startswith("not a record")  # the unreadable entry
        assert letters.get(request_id=records[1]["request_id"]).stream_entry == first.decode()
        assert ledger.usage_backlog(client) == {"waiting": 0, "pending": 0, "oldest_age_seconds": None}
    finally:
        client.close()
