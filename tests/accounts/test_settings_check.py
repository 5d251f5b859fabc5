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
