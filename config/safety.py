"""Refuse to start in production mode with an unsafe configuration.

Called at the end of settings, so every process (web, worker, beat, manage.py) refuses alike,
with one message listing everything to set.
"""

from django.core.exceptions import ImproperlyConfigured

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
