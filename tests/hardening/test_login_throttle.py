"""Dashboard (and admin) login throttling: accounts/throttle.py behind the login forms.

LIMIT failed logins within WINDOW seconds from one client address, or for one email, and the form refuses
every attempt with a clear error, even with the right password, until the window has passed. Nothing resets
a counter early: a success from one address does not clear another's, nor its own. The relay's own throttle
of bad /v1 keys per address is tested in tests/relay/test_bad_input.py.
"""

import time
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from accounts import throttle
from accounts.models import Role
from tests.accounts.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"
LIMIT = 4


@pytest.fixture(autouse=True)
def _small_limits(settings, monkeypatch):
    settings.TOLLGATE_LOGIN_FAILURE_LIMIT = LIMIT
    settings.TOLLGATE_LOGIN_FAILURE_WINDOW = 900
    # Counters of this test only (the cache may be a Redis shared with other tests: never cleared here).
    monkeypatch.setattr(throttle, "PREFIX", f"login-failures-test-{uuid.uuid4().hex}")


@pytest.fixture
def alice():
    user = UserFactory(email="alice@example.com")
    MembershipFactory(user=user, role=Role.OWNER)
    return user


def login(email, password, address="10.0.0.1", url=None):
    return Client(REMOTE_ADDR=address).post(url or reverse("login"), {"username": email, "password": password})


def logged_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


def throttled(response) -> bool:
    return response.status_code == 200 and b"Too many failed login attempts" in response.content


def test_failures_from_one_address_block_it_even_with_the_right_password(alice):
    for n in range(LIMIT):
        response = login(f"nobody{n}@example.com", "wrong password")  # a different email each time
        assert response.status_code == 200 and not throttled(response)
    response = login("alice@example.com", PASSWORD)
    assert throttled(response) and not logged_in(response)
    assert b"Wait 15 minutes" in response.content
    # Other addresses are not affected.
    assert logged_in(login("alice@example.com", PASSWORD, address="10.0.0.2"))


def test_failures_for_one_email_block_it_from_every_address(alice):
    for n in range(LIMIT):
        assert not throttled(login("alice@example.com", "wrong password", address=f"10.1.0.{n}"))
    response = login("alice@example.com", PASSWORD, address="10.9.9.9")
    assert throttled(response) and not logged_in(response)
    response = login("ALICE@example.com ", PASSWORD, address="10.9.9.8")  # the same email, written differently
    assert throttled(response)
    # Another account from the same addresses is fine.
    bob = UserFactory(email="bob@example.com")
    MembershipFactory(user=bob, role=Role.MEMBER)
    assert logged_in(login("bob@example.com", PASSWORD, address="10.1.0.0"))


def test_unknown_emails_are_throttled_alike(db):
    """The refusal tells nothing about which emails have an account."""
    for n in range(LIMIT):
        login("ghost@example.com", "wrong", address=f"10.2.0.{n}")
    assert throttled(login("ghost@example.com", "whatever", address="10.2.1.1"))


def test_a_success_does_not_reset_other_addresses(alice):
    for _ in range(LIMIT - 1):
        login("nobody@example.com", "wrong", address="10.3.0.1")
    assert logged_in(login("alice@example.com", PASSWORD, address="10.3.0.2"))
    assert not throttled(login("nobody2@example.com", "wrong", address="10.3.0.1"))  # the LIMIT-th failure
    assert throttled(login("alice@example.com", PASSWORD, address="10.3.0.1"))


def test_a_success_does_not_reset_its_own_address_either(alice):
    """Someone with a valid account cannot wipe their address's record between guesses at others."""
    for n in range(LIMIT - 1):
        login(f"victim{n}@example.com", "guess", address="10.4.0.1")
    assert logged_in(login("alice@example.com", PASSWORD, address="10.4.0.1"))
    login("victim9@example.com", "guess", address="10.4.0.1")
    assert throttled(login("alice@example.com", PASSWORD, address="10.4.0.1"))


def test_the_block_ends_when_the_window_passes(alice, settings):
    settings.TOLLGATE_LOGIN_FAILURE_WINDOW = 2
    for _ in range(LIMIT):
        login("alice@example.com", "wrong", address="10.5.0.1")
    assert throttled(login("alice@example.com", PASSWORD, address="10.5.0.1"))
    time.sleep(2.2)
    assert logged_in(login("alice@example.com", PASSWORD, address="10.5.0.1"))


def test_refused_attempts_while_blocked_do_not_check_the_password(alice, monkeypatch):
    for _ in range(LIMIT):
        login("alice@example.com", "wrong", address="10.6.0.1")
    calls = []
    monkeypatch.setattr("django.contrib.auth.forms.authenticate", lambda *a, **k: calls.append(1))
    assert throttled(login("alice@example.com", PASSWORD, address="10.6.0.1"))
    assert calls == []


def test_malformed_submissions_do_not_count_and_do_not_fail(alice):
    for _ in range(LIMIT * 2):
        response = login("not an email", "x", address="10.7.0.1")
        assert response.status_code == 200
    assert logged_in(login("alice@example.com", PASSWORD, address="10.7.0.1"))


def test_the_admin_login_shares_the_throttle(alice):
    alice.is_staff = True
    alice.save()
    admin_login = reverse("admin:login")
    for _ in range(LIMIT):
        response = Client(REMOTE_ADDR="10.8.0.1").post(admin_login, {"username": "alice@example.com", "password": "wrong"})
        assert response.status_code == 200
    response = Client(REMOTE_ADDR="10.8.0.2").post(admin_login, {"username": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 200 and b"Too many failed login attempts" in response.content
    assert throttled(login("alice@example.com", PASSWORD, address="10.8.0.3"))  # and the dashboard's


def test_a_broken_cache_fails_open(alice, monkeypatch):
    class BrokenCache:
        def __getattr__(self, name):
            def broken(*args, **kwargs):
                raise ConnectionError("cache down")

            return broken

    monkeypatch.setattr(throttle, "cache", BrokenCache())
    assert login("alice@example.com", "wrong").status_code == 200
    assert logged_in(login("alice@example.com", PASSWORD))
