"""The relay's bad-key throttle (relay/throttle.py) refuses failures, never a valid key, and believes
X-Forwarded-For only from TOLLGATE_TRUSTED_PROXIES; the login throttle reads addresses the same way."""

import secrets
import threading
import time
import uuid

import httpx
import pytest
from django.test import Client
from django.urls import reverse

from accounts import throttle as login_throttle
from relay import throttle as relay_throttle

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}


def _post(gateway, secret, headers=None, client=httpx):
    return client.post(gateway.base_url + "/chat/completions", json=CHAT, timeout=10,
                       headers={"Authorization": f"Bearer {secret}", **(headers or {})})


def _random_key() -> str:
    return f"tg-{secrets.token_urlsafe(32)}"


@pytest.fixture
def throttle(relay_server):
    runtime = relay_server.relay.runtime
    runtime.key_throttle.reset()
    yield runtime.key_throttle
    runtime.key_throttle.reset()  # other tests share this address


def test_bad_keys_do_not_lock_out_valid_keys_from_the_same_address(gateway, throttle):
    with httpx.Client() as client:
        statuses = [_post(gateway, _random_key(), client=client).status_code for _ in range(relay_throttle.LIMIT + 5)]
        assert statuses[: relay_throttle.LIMIT] == [401] * relay_throttle.LIMIT and set(statuses[relay_throttle.LIMIT:]) == {429}
        assert _post(gateway, gateway.secret, client=client).status_code == 200  # the valid key is served
        refused = _post(gateway, _random_key(), client=client)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_a_valid_key_the_process_has_not_seen_yet_is_served_too(gateway, throttle, relay_server):
    from keys import services as key_services

    _, fresh = key_services.virtual_key_create(actor=gateway.ctx, name="fresh")  # not in the snapshot cache
    relay_server.relay.runtime.cache.clear()
    for _ in range(relay_throttle.LIMIT + 1):
        _post(gateway, _random_key())
    assert _post(gateway, fresh).status_code == 200


def test_a_throttled_flood_is_looked_up_one_key_at_a_time(gateway, throttle, monkeypatch):
    """Unknown keys from a throttled address queue for the database one by one; keys in the cache skip the queue."""
    from relay import snapshots as selectors

    for _ in range(relay_throttle.LIMIT):
        _post(gateway, _random_key())
    assert _post(gateway, gateway.secret).status_code == 200  # cached now
    real, state, lock = selectors.key_snapshot_by_hash, {"now": 0, "peak": 0}, threading.Lock()

    def slow_lookup(key_hash):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.25)
        try:
            return real(key_hash)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(selectors, "key_snapshot_by_hash", slow_lookup)
    results: list[int] = []
    flood = [threading.Thread(target=lambda: results.append(_post(gateway, _random_key()).status_code)) for _ in range(8)]
    for thread in flood:
        thread.start()
    time.sleep(0.1)
    assert _post(gateway, gateway.secret).status_code == 200
    assert len(results) <= 3  # answered while the flood's lookups (0.25 s each, one at a time) still queue
    for thread in flood:
        thread.join(10)
    assert results == [429] * 8 and state["peak"] == 1


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(gateway, throttle, settings):
    settings.TOLLGATE_TRUSTED_PROXIES = []
    statuses = [_post(gateway, _random_key(), {"X-Forwarded-For": f"203.0.113.{n}"}).status_code for n in range(relay_throttle.LIMIT + 1)]
    assert statuses[-1] == 429  # every request counted against the peer, whatever the header claimed


def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(gateway, throttle, settings):
    settings.TOLLGATE_TRUSTED_PROXIES = ["127.0.0.0/8", "10.0.0.0/8"]
    for n in range(relay_throttle.LIMIT):
        # The left-most entry is the client's own claim, changed on every request: it must not matter.
        assert _post(gateway, _random_key(), {"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.7, 10.1.1.1"}).status_code == 401
    assert _post(gateway, _random_key(), {"X-Forwarded-For": "203.0.113.7, 10.1.1.1"}).status_code == 429
    assert _post(gateway, _random_key(), {"X-Forwarded-For": "203.0.113.8"}).status_code == 401  # another client
    assert _post(gateway, gateway.secret, {"X-Forwarded-For": "203.0.113.7"}).status_code == 200


@pytest.mark.django_db
def test_the_login_throttle_reads_the_client_address_the_same_way(settings, monkeypatch):
    settings.TOLLGATE_LOGIN_FAILURE_LIMIT = 2
    monkeypatch.setattr(login_throttle, "PREFIX", f"login-failures-test-{uuid.uuid4().hex}")

    def attempt(remote, forwarded):
        return Client(REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded).post(
            reverse("login"), {"username": f"{uuid.uuid4().hex}@example.com", "password": "wrong"})

    def throttled(response):
        return b"Too many failed login attempts" in response.content

    settings.TOLLGATE_TRUSTED_PROXIES = []
    for n in range(2):
        attempt("192.0.2.10", f"203.0.113.{n}")
    assert throttled(attempt("192.0.2.10", "203.0.113.99"))  # the header was not believed

    settings.TOLLGATE_TRUSTED_PROXIES = ["192.0.2.0/24"]
    for _ in range(2):
        attempt("192.0.2.20", "203.0.113.50, 192.0.2.21")
    assert throttled(attempt("192.0.2.20", "198.51.100.1, 203.0.113.50"))
    assert not throttled(attempt("192.0.2.20", "203.0.113.51"))  # another client behind the same proxy
