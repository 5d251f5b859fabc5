"""config.safety: production mode refuses unsafe settings, naming what to set; DEBUG allows anything."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.safety import check_production_settings, production_problems

REPO_ROOT = Path(__file__).resolve().parents[2]

SAFE = {
    "debug": False,
    "secret_key": "s" * 64,
    "key_hash_secret": "k" * 40,
    "encryption_keys": ["ZmVybmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGU="],
    "allowed_hosts": ["gateway.example.com"],
    "database_url": "postgres://tollgate:pw@db:5432/tollgate",
    "redis_url": "redis://redis:6379/0",
}

# (override, the variable the message must name)
UNSAFE = [
    ({"secret_key": None}, "DJANGO_SECRET_KEY"),
    ({"secret_key": ""}, "DJANGO_SECRET_KEY"),
    ({"secret_key": "short"}, "DJANGO_SECRET_KEY"),
    ({"secret_key": "django-insecure-" + "x" * 60}, "DJANGO_SECRET_KEY"),
    ({"key_hash_secret": None}, "TOLLGATE_KEY_HASH_SECRET"),
    ({"key_hash_secret": "k" * 31}, "TOLLGATE_KEY_HASH_SECRET"),
    ({"encryption_keys": []}, "TOLLGATE_ENCRYPTION_KEYS"),
    ({"allowed_hosts": []}, "DJANGO_ALLOWED_HOSTS"),
    ({"allowed_hosts": ["*"]}, "DJANGO_ALLOWED_HOSTS"),
    ({"allowed_hosts": ["gateway.example.com", "*"]}, "DJANGO_ALLOWED_HOSTS"),
    ({"database_url": "sqlite:////data/tollgate.sqlite3"}, "DATABASE_URL"),
    ({"redis_url": None}, "REDIS_URL"),
    ({"redis_url": ""}, "REDIS_URL"),
]
ALL_NAMES = ["DJANGO_SECRET_KEY", "TOLLGATE_KEY_HASH_SECRET", "TOLLGATE_ENCRYPTION_KEYS", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"]


def test_safe_configuration_passes():
    assert production_problems(**SAFE) == []
    check_production_settings(**SAFE)  # does not raise


@pytest.mark.parametrize(("override", "name"), UNSAFE, ids=[f"{n}={o}" for o, n in UNSAFE])
def test_each_unsafe_setting_is_reported_by_name(override, name):
    problems = production_problems(**{**SAFE, **override})
    assert len(problems) == 1, problems
    assert problems[0].startswith(name + ":")
    advice = problems[0].removeprefix(name + ":").strip()
    assert len(advice.split()) >= 3, "the message must say what to set, not only what is wrong"
    with pytest.raises(ImproperlyConfigured, match=name):
        check_production_settings(**{**SAFE, **override})


def test_every_problem_is_listed_at_once():
    nothing = {"debug": False, "secret_key": None, "key_hash_secret": None, "encryption_keys": [], "allowed_hosts": [],
               "database_url": "sqlite:///x.sqlite3", "redis_url": None}
    problems = production_problems(**nothing)
    assert [p.split(":")[0] for p in problems] == ALL_NAMES


@pytest.mark.parametrize("override", [o for o, _ in UNSAFE] + [{"secret_key": None, "redis_url": None, "allowed_hosts": ["*"]}])
def test_debug_allows_anything(override):
    assert production_problems(**{**SAFE, **override, "debug": True}) == []


def test_process_refuses_to_start_in_production_with_nothing_set(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        # Only so that a failure of the check cannot write into the repository's data folder.
        "TOLLGATE_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "Refusing to start with DJANGO_DEBUG off" in result.stderr
    for name in ALL_NAMES:
        assert name in result.stderr, name
    assert not any(tmp_path.iterdir()), "no local secret may be generated in production mode"


def test_process_starts_in_production_when_configured(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "TOLLGATE_DATA_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": SAFE["secret_key"],
        "TOLLGATE_KEY_HASH_SECRET": SAFE["key_hash_secret"],
        "TOLLGATE_ENCRYPTION_KEYS": SAFE["encryption_keys"][0],
        "DJANGO_ALLOWED_HOSTS": "gateway.example.com",
        "DATABASE_URL": SAFE["database_url"],
        "REDIS_URL": SAFE["redis_url"],
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('ok')"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --- Redis persistence: usage waits in a Redis stream, so a Redis that forgets on restart loses it ---------


class FakeRedis:
    """CONFIG and INFO answers of a Redis; config=None: CONFIG is disabled (managed Redis)."""

    def __init__(self, config=None, info=None):
        self.config, self.info_answer = config, info or {}

    def config_get(self, name):
        import redis

        if self.config is None:
            raise redis.ResponseError("unknown command 'CONFIG'")
        return {name: self.config.get(name, "")}

    def info(self, section):
        assert section == "persistence"
        return self.info_answer


@pytest.mark.parametrize(("client", "expected"), [
    (FakeRedis({"appendonly": "yes", "save": ""}), "aof"),
    (FakeRedis({"appendonly": "no", "save": "3600 1 300 100"}), "rdb"),
    (FakeRedis({"appendonly": "no", "save": ""}), ""),
    (FakeRedis(None, {"aof_enabled": 1}), "aof"),
    (FakeRedis(None, {"aof_enabled": 0, "rdb_saves": 3, "rdb_last_bgsave_time_sec": 0}), "rdb"),
    (FakeRedis(None, {"aof_enabled": 0, "rdb_saves": 0, "rdb_last_bgsave_time_sec": -1}), None),
], ids=["aof", "rdb", "none", "info-aof", "info-rdb", "info-unknown"])
def test_redis_persistence_is_detected_with_or_without_config(client, expected):
    from config.safety import redis_persistence

    assert redis_persistence(client) == expected


def test_production_refuses_a_volatile_redis_unless_accepted_and_debug_only_warns():
    from config.safety import check_redis_persistence

    volatile, unknown, persistent = FakeRedis({"appendonly": "no", "save": ""}), FakeRedis(None, {}), FakeRedis({"appendonly": "yes"})
    for client, words in ((volatile, "does not persist"), (unknown, "could not confirm")):
        with pytest.raises(ImproperlyConfigured, match="TOLLGATE_ACCEPT_VOLATILE_REDIS") as info:
            check_redis_persistence(debug=False, redis_url="redis://r:6379/0", accept_volatile=False, client=client)
        assert words in str(info.value) and "REDIS_URL" in str(info.value)
        assert check_redis_persistence(debug=False, redis_url="redis://r:6379/0", accept_volatile=True, client=client) is None
        assert words in check_redis_persistence(debug=True, redis_url="redis://r:6379/0", accept_volatile=False, client=client)
    assert check_redis_persistence(debug=False, redis_url="redis://r:6379/0", accept_volatile=False, client=persistent) is None
    assert check_redis_persistence(debug=False, redis_url=None, accept_volatile=False) is None  # no Redis: checked above


def _production_env(tmp_path, redis_url, **extra):
    return {
        "PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "false",
        "TOLLGATE_DATA_DIR": str(tmp_path), "DJANGO_SECRET_KEY": SAFE["secret_key"],
        "TOLLGATE_KEY_HASH_SECRET": SAFE["key_hash_secret"], "TOLLGATE_ENCRYPTION_KEYS": SAFE["encryption_keys"][0],
        "DJANGO_ALLOWED_HOSTS": "gateway.example.com", "DATABASE_URL": SAFE["database_url"], "REDIS_URL": redis_url, **extra,
    }


def test_a_real_redis_without_persistence_stops_production_start_unless_accepted(tmp_path):
    """The test machine's Redis runs without persistence, as the issue's lost-usage case did."""
    import redis
    from django.conf import settings

    from config.safety import redis_persistence

    if not settings.REDIS_URL:
        pytest.skip("needs a Redis")
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        if redis_persistence(client) != "":
            pytest.skip("this Redis persists its data")
    finally:
        client.close()
    command = [sys.executable, "-c", "import django; django.setup(); print('ok')"]
    refused = subprocess.run(command, cwd=REPO_ROOT, env=_production_env(tmp_path, settings.REDIS_URL), capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "does not persist" in refused.stderr and "TOLLGATE_ACCEPT_VOLATILE_REDIS=true" in refused.stderr
    accepted = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                              env=_production_env(tmp_path, settings.REDIS_URL, TOLLGATE_ACCEPT_VOLATILE_REDIS="true"))
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip() == "ok"
