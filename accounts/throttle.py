"""Dashboard login throttling: after LIMIT failed logins within WINDOW seconds from one client address,
or for one email address, the login form refuses every attempt (even with the right password) until the
window has passed.

Counters live in Django's cache (Redis when REDIS_URL is set, so every web process shares them; the
process's local memory otherwise). A window starts with its first failure and is fixed: LIMIT failures in
WINDOW seconds at most, per address and per email. Nothing resets a counter early, not even a successful
login (from this address or another): a guesser who also holds a valid account must not be able to clear
their address, and an account under attack stays protected while its owner signs in elsewhere.

The email counter is kept for addresses with and without an account alike, so the refusal tells nothing
about which emails exist. Emails are hashed in cache keys. If the cache fails, the throttle fails open
(logins keep working, a warning is logged): the passwords remain the defence, the cache has a timeout.
"""

import hashlib
import logging
import time

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)

LIMIT = 10
WINDOW = 15 * 60
PREFIX = "login-failures"


def _limit() -> int:
    return getattr(settings, "TOLLGATE_LOGIN_FAILURE_LIMIT", LIMIT)


def _window() -> int:
    return getattr(settings, "TOLLGATE_LOGIN_FAILURE_WINDOW", WINDOW)


def _keys(address: str | None, email: str | None) -> list[str]:
    keys = []
    if address:
        keys.append(f"{PREFIX}:ip:{address}")
    if email:
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        keys.append(f"{PREFIX}:email:{digest}")
    return keys


def blocked_for(*, address: str | None, email: str | None) -> int:
    """Seconds until a login may be tried again from this address or for this email; 0: go ahead."""
    keys = _keys(address, email)
    try:
        values = cache.get_many([*keys, *(f"{key}:start" for key in keys)])
    except Exception as exc:  # noqa: BLE001 - any cache failure: fail open, the password still decides
        log.warning("login throttle unavailable (%s); not throttling", exc.__class__.__name__)
        return 0
    now, wait = time.time(), 0
    for key in keys:
        if (values.get(key) or 0) >= _limit():
            started = values.get(f"{key}:start") or now
            wait = max(wait, int(started + _window() - now) + 1)
    return max(wait, 0)


def failed(*, address: str | None, email: str | None) -> None:
    """Count one failed login against the address and the email."""
    window = _window()
    for key in _keys(address, email):
        try:
            cache.add(f"{key}:start", time.time(), timeout=window)  # the first failure opens the window
            if not cache.add(key, 1, timeout=window):
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr: this failure opens a new window
                    cache.set(key, 1, timeout=window)
        except Exception as exc:  # noqa: BLE001
            log.warning("login throttle unavailable (%s); failure not counted", exc.__class__.__name__)
