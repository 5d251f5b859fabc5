"""Probes feed the relay's cooldowns: a deployment whose probe failed is routed around until a later
probe succeeds (or its cooldown ends), before any client request meets the failure.

The relay shares its cooldowns through one Redis hash {deployment id: cooled-until epoch} that every
relay process polls in the background (wire.redis_keys.COOLDOWNS, which relay/cooldown.py reads too). A probe's cooldown lasts until the next scheduled probe (PROBE_INTERVAL_SECONDS) or the
model's own cooldown, whichever is longer; the probes' own hash remembers which cooldowns a probe set,
so a later successful probe lifts those and never one the relay set from real traffic. Without
Redis (the embedded default) there is nothing to share and probes only record their history.
"""

import logging
import time

from django.conf import settings

from wire import redis_keys

log = logging.getLogger(__name__)

COOLDOWN_HASH = redis_keys.COOLDOWNS
PROBE_COOLDOWN_HASH = redis_keys.PROBE_COOLDOWNS
PROBE_INTERVAL_SECONDS = 300  # config/celery.py's schedule of keys.deployment_probes_run


def probe_cooldown_apply(*, deployment_id: int, ok: bool, cooldown_seconds: int, now: float | None = None) -> float | None:
    """Cool the deployment after a failed probe, lift a probe's cooldown after a successful one; the
    cooled-until time set (None when nothing was set or Redis is away)."""
    if not settings.REDIS_URL:
        return None
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        if not ok:
            until = (now or time.time()) + max(PROBE_INTERVAL_SECONDS, cooldown_seconds)
            with client.pipeline(transaction=True) as pipe:
                pipe.hset(COOLDOWN_HASH, deployment_id, until)
                pipe.hset(PROBE_COOLDOWN_HASH, deployment_id, until)
                pipe.execute()
            log.warning("deployment %s failed its probe: cooling down until the next probe", deployment_id)
            return until
        if client.hexists(PROBE_COOLDOWN_HASH, deployment_id):
            with client.pipeline(transaction=True) as pipe:
                pipe.hdel(COOLDOWN_HASH, deployment_id)
                pipe.hdel(PROBE_COOLDOWN_HASH, deployment_id)
                pipe.execute()
        return None
    except redis.RedisError as exc:  # the history is still recorded; the relay's own failures still count
        log.warning("probe cooldown not shared: %s", exc.__class__.__name__)
        return None
    finally:
        client.close()


def probe_cooled_until(deployment_id: int) -> float | None:
    """When a probe's cooldown of the deployment ends (None: not cooled by a probe, or no Redis)."""
    if not settings.REDIS_URL:
        return None
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        value = client.hget(PROBE_COOLDOWN_HASH, deployment_id)
    except redis.RedisError:
        return None
    finally:
        client.close()
    until = float(value) if value is not None else None
    return until if until is not None and until > time.time() else None
