"""GET /api/usage/backlog/: how far the ledger is behind, and the organization's refused usage records."""

import orjson
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from billing import ledger
from billing.models import UsageDeadLetter
from tests.accounts.factories import OrganizationFactory

URL = "/api/usage/backlog/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def letters(org):
    UsageDeadLetter.objects.create(organization=org, request_id="mine", reason="r", record="{}")
    UsageDeadLetter.objects.create(organization=OrganizationFactory(), request_id="theirs", reason="r", record="{}")
    UsageDeadLetter.objects.create(organization=None, request_id="", reason="not a record", record='"x"')


def test_an_admin_sees_the_backlog_and_only_their_own_dead_letters(admin_user, letters):
    body = client_for(admin_user).get(URL).json()
    assert body["dead_letters"] == 1 and "dead_letters_all" not in body
    assert body["stream"] is bool(settings.REDIS_URL)
    if not settings.REDIS_URL:
        assert body["waiting"] is body["pending"] is body["oldest_age_seconds"] is None


def test_staff_also_see_every_dead_letter(admin_user, letters):
    admin_user.is_staff = True
    admin_user.save(update_fields=["is_staff"])
    assert client_for(admin_user).get(URL).json()["dead_letters_all"] == 3


def test_members_may_not_read_it(member_user):
    assert client_for(member_user).get(URL).status_code == 403


@pytest.mark.skipif(not settings.REDIS_URL, reason="the stream needs Redis")
def test_entries_waiting_in_the_stream_are_counted_with_the_oldest_age(viewer_user, transactional_db):
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        ledger.usage_drain(client)  # whatever an earlier test left
        first_ms = int(client.xadd(ledger.STREAM, {"b": orjson.dumps([])}).decode().split("-")[0])
        client.xadd(ledger.STREAM, {"b": orjson.dumps([])})
        body = client_for(viewer_user).get(URL).json()
        assert (body["stream"], body["waiting"], body["pending"]) == (True, 2, 0)
        assert 0 <= body["oldest_age_seconds"] < 60 and first_ms > 0
        ledger.usage_drain(client)
        body = client_for(viewer_user).get(URL).json()
        assert (body["waiting"], body["oldest_age_seconds"]) == (0, None)
    finally:
        client.close()
