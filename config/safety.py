"""Refuse to start in production mode with an unsafe configuration.

Called at the end of settings, so every process (web, worker, beat, manage.py) refuses alike,
with one message listing everything to set.
"""

import logging

from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)

WEAK_SECRET_MIN_LENGTH = 50


def production_problems(
    *,
    debug: bool,
    secret_key: str | None,
    key_hash_secret: str | None,
    encryption_keys: list[str],
    allowed_hosts: list[str],
    database_url: str,
    redis_url: str | None,
) -> list[str]:
    """Return a line per unsafe setting (empty when DEBUG is on: local runs are allowed anything)."""
    if debug:
        return []
    problems = []
    if not secret_key or len(secret_key) < WEAK_SECRET_MIN_LENGTH or secret_key.startswith("django-insecure"):
        problems.append(f"DJANGO_SECRET_KEY: set a random value of at least {WEAK_SECRET_MIN_LENGTH} characters.")
    if not key_hash_secret or len(key_hash_secret) < 32:
        problems.append("TOLLGATE_KEY_HASH_SECRET: set a random value of at least 32 characters (hashes virtual keys).")
    if not encryption_keys:
        problems.append(
            "TOLLGATE_ENCRYPTION_KEYS: set one or more comma-separated Fernet keys "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
        )
    if not allowed_hosts or "*" in allowed_hosts:
        problems.append("DJANGO_ALLOWED_HOSTS: list the host names this server answers to (not '*').")
    if database_url.startswith("sqlite"):
        problems.append("DATABASE_URL: production needs PostgreSQL (postgres://user:pass@host:5432/db).")
    if not redis_url:
        problems.append("REDIS_URL: production needs Redis (redis://host:6379/0) for shared limits and the usage stream.")
    return problems


def check_production_settings(**settings) -> None:
    problems = production_problems(**settings)
    if problems:
        raise ImproperlyConfigured(
            "Refusing to start with DJANGO_DEBUG off and an unsafe configuration:\n  - " + "\n  - ".join(problems)
        )


VOLATILE_REDIS = (
    "REDIS_URL: Redis does not persist its data (neither AOF nor RDB snapshots), so usage records waiting in "
    "the stream for the ledger are lost if it restarts. Enable persistence (appendonly yes, or save), or set "
    "TOLLGATE_ACCEPT_VOLATILE_REDIS=true to accept the risk."
)
UNKNOWN_REDIS = (
    "REDIS_URL: could not confirm that Redis persists its data (CONFIG is disabled and INFO shows neither AOF nor a "
    "snapshot since it started). Enable persistence, or set TOLLGATE_ACCEPT_VOLATILE_REDIS=true if it does persist "
    "or you accept the risk."
)


def redis_persistence(client) -> str | None:
    """How Redis keeps its data across a restart: "aof", "rdb", "" (it does not) or None (cannot tell).

    CONFIG GET says it directly; managed Redis often disables CONFIG, and then INFO persistence tells AOF
    apart, and RDB only once a snapshot has been taken since Redis started.
    """
    import redis

    try:
        appendonly = client.config_get("appendonly").get("appendonly")
        save = client.config_get("save").get("save")
    except redis.ResponseError:  # CONFIG disabled or renamed
        info = client.info("persistence")
        if int(info.get("aof_enabled") or 0):
            return "aof"
        if int(info.get("rdb_saves") or 0) > 0 or int(info.get("rdb_last_bgsave_time_sec", -1)) != -1:
            return "rdb"
        return None
    if appendonly == "yes":
        return "aof"
    return "rdb" if (save or "").strip() else ""


def check_redis_persistence(*, debug: bool, redis_url: str | None, accept_volatile: bool, client=None) -> str | None:
    """Refuse to start in production mode on a Redis without persistence (unless accepted); warn in DEBUG.

    Returns the problem found, if any. A Redis that cannot be reached is not checked: the processes start
    and serve without it (README: fail-open table), and the next start checks again.
    """
    if not redis_url or accept_volatile:
        return None
    import redis

    own = client is None
    client = client or redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        mode = redis_persistence(client)
    except redis.RedisError as exc:
        log.warning("could not check whether Redis persists its data (%s)", exc.__class__.__name__)
        return None
    finally:
        if own:
            client.close()
    if mode:
        return None
    problem = VOLATILE_REDIS if mode == "" else UNKNOWN_REDIS
    if not debug:
        raise ImproperlyConfigured("Refusing to start with DJANGO_DEBUG off and an unsafe configuration:\n  - " + problem)
    log.warning("%s", problem)
    return problem
