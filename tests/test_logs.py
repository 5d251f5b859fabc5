"""Log lines: timestamps and levels everywhere, JSON on request, and a console not flooded by the usage drain."""

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from config.logs import JsonFormatter, RoutineTasksAtDebug, TextFormatter
from tests.gateway import _free_port

ROOT = Path(__file__).resolve().parent.parent
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\[[\w-]+\] [\w.]+: ")


def _record(name="tollgate.test", level=logging.INFO, msg="hello %s", args=("world",), **extra):
    logger = logging.getLogger(name)
    return logger.makeRecord(name, level, __file__, 1, msg, args, None, extra=extra or None)


def test_text_lines_carry_a_readable_utc_time_and_the_level():
    record = _record()
    record.created = 1_767_225_600.25  # 2026-01-01 00:00:00.250 UTC
    line = TextFormatter().format(record)
    assert line == "2026-01-01T00:00:00.250Z INFO    [MainProcess] tollgate.test: hello world"
    assert TEXT_LINE.match(line)


def test_json_lines_are_one_object_with_extras_and_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(level=logging.ERROR, msg="failed for %s", args=("关键",), request_id="r-1", amount=object())
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", entry["time"])
    assert (entry["level"], entry["logger"], entry["message"], entry["request_id"]) == ("ERROR", "tollgate.test", "failed for 关键", "r-1")
    assert "ValueError: boom" in entry["exception"] and isinstance(entry["amount"], str)
    assert "args" not in entry and "msg" not in entry


@pytest.fixture
def celery_logger():
    logger = logging.getLogger("celery.app.trace")
    level = logger.level
    yield logger
    logger.setLevel(level)


def _through_filter(logger, message, args):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    handler.addFilter(RoutineTasksAtDebug())
    logger.addHandler(handler)
    try:
        logger.info(message, args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_routine_task_lines_are_debug_and_others_stay_info(celery_logger):
    celery_logger.setLevel(logging.INFO)
    drained = {"name": "billing.usage_drain", "id": "x", "runtime": 0.01, "return_value": 25}
    assert _through_filter(celery_logger, "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s", drained) == ""
    alert = {**drained, "name": "billing.alert_deliver"}
    assert " INFO " in _through_filter(celery_logger, "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s", alert)
    celery_logger.setLevel(logging.DEBUG)
    assert " DEBUG " in _through_filter(celery_logger, "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s", drained)


def _environment(tmp_path, **extra):
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "REDIS_URL", "PYTEST_XDIST_WORKER")}
    # Running as root (CI, containers), Celery warns before any logging is set up; not a log line.
    env["PYTHONWARNINGS"] = "ignore:You're running the worker with superuser privileges"
    return {**env, "TOLLGATE_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings", **extra}


def _run_until(argv, env, seen, *, stop=signal.SIGINT, stderr_only=False, timeout=90) -> list[str]:
    """Run a process until its log lines satisfy `seen` (bounded, however slow the machine), then stop it;
    every line it wrote on stderr, and on stdout too unless `stderr_only`."""
    if stderr_only:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        out = process.stderr
    else:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = process.stdout
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in out), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and not seen(list(lines)):
        time.sleep(0.1)
    process.send_signal(stop)
    process.wait(timeout=30)
    reader.join(timeout=10)
    return [line for line in lines if line.strip()]


def _run_worker(tmp_path, seen, **extra) -> list[str]:
    """Procfile.dev's worker (with beat) until its log lines satisfy `seen`."""
    argv = [str(ROOT / ".venv/bin/celery"), "-A", "config", "worker", "--beat", "--concurrency", "1"]
    return _run_until(argv, _environment(tmp_path, **extra), seen, stop=signal.SIGTERM, stderr_only=True)


def _ready_for(seconds):
    """Seen: the worker said it is ready, `seconds` ago (the routine tasks beat sends meanwhile)."""
    ready_at = []

    def seen(lines):
        if not ready_at and any("celery@" in line and "ready" in line for line in lines):
            ready_at.append(time.monotonic())
        return bool(ready_at) and time.monotonic() - ready_at[0] >= seconds

    return seen


def test_worker_and_beat_are_quiet_at_info_with_a_time_and_level_on_every_line(tmp_path):
    lines = _run_worker(tmp_path, _ready_for(5))  # the drain's runs meanwhile are what must not show at INFO
    assert any("celery@" in line and "ready" in line for line in lines), lines
    assert [line for line in lines if not TEXT_LINE.match(line)] == []
    assert [line for line in lines if "usage_drain" in line] == []


def test_worker_json_lines_and_drain_runs_at_debug(tmp_path):
    def drained(lines):
        return any("billing.usage_drain" in line and "succeeded" in line for line in lines) and any('"Beat"' in line for line in lines)

    lines = _run_worker(tmp_path, drained, TOLLGATE_LOG_FORMAT="json", TOLLGATE_LOG_LEVEL="DEBUG")
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    drain = [entry for entry in entries if "billing.usage_drain" in entry["message"]]
    assert drain and {entry["level"] for entry in drain} == {"DEBUG"}
    assert {entry["process"] for entry in entries} >= {"MainProcess", "Beat"}


def test_web_process_json_lines(tmp_path):
    argv = [str(ROOT / ".venv/bin/uvicorn"), "config.asgi:application", "--port", str(_free_port()), "--no-access-log"]
    lines = _run_until(argv, _environment(tmp_path, TOLLGATE_LOG_FORMAT="json"), lambda lines: any("Uvicorn running" in line for line in lines))
    entries = [json.loads(line) for line in lines]
    assert any(entry["message"].startswith("Started server process") for entry in entries), lines
    assert all(entry["level"] and entry["time"] for entry in entries)


def test_an_unknown_log_format_is_refused(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=_environment(tmp_path, TOLLGATE_LOG_FORMAT="yaml"),
        capture_output=True, text=True,
    )
    assert run.returncode != 0 and "TOLLGATE_LOG_FORMAT must be text or json" in run.stderr


def test_production_web_process_logs_only_json_lines_with_the_access_log(gateway, tmp_path):
    """DJANGO_DEBUG=false with TOLLGATE_LOG_FORMAT=json, as a log collector would read it: every line a web
    process writes (start-up, /v1 access lines, warnings, shutdown) is one JSON object, the access lines
    carry the request id the client got, and neither the virtual key nor the provider key appears."""
    import httpx
    from django.conf import settings
    from django.db import connection

    from tests.faults.helpers import secrets_env
    from tests.gateway import server_database_url

    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("production mode needs PostgreSQL and Redis")
    port = _free_port()
    env = _environment(tmp_path, **secrets_env(), DJANGO_DEBUG="false", DJANGO_ALLOWED_HOSTS="127.0.0.1", TOLLGATE_LOG_FORMAT="json",
                       TOLLGATE_ACCESS_LOG="true", DATABASE_URL=server_database_url(), REDIS_URL=settings.REDIS_URL,
                       TOLLGATE_ACCEPT_VOLATILE_REDIS="true", TOLLGATE_EGRESS_ALLOW_HOSTS="127.0.0.1", TOLLGATE_EGRESS_ALLOW_HTTP="true")
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/uvicorn"), "config.asgi:application", "--port", str(port), "--no-access-log"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline and process.poll() is None, "the production web process did not start"
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {gateway.secret}"}
        ok = httpx.post(base + "/v1/chat/completions", headers=headers, json={"model": "gpt-test", "messages": [{"role": "user", "content": "Hi"}]}, timeout=30)
        missing = httpx.post(base + "/v1/chat/completions", headers=headers, json={"model": "nope", "messages": [{"role": "user", "content": "Hi"}]}, timeout=30)
        assert (ok.status_code, missing.status_code) == (200, 404)
        time.sleep(2)  # the access log is written once a second, off the request path
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    lines = [line for line in out.splitlines() if line.strip()]
    assert [line for line in lines if not _is_json_object(line)] == []  # every line is one JSON object
    entries = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    access = {entry["request_id"]: entry for entry in entries if entry["logger"] == "tollgate.access"}
    assert access[ok.headers["x-request-id"]]["status_code"] == 200 and access[ok.headers["x-request-id"]]["model_name"] == "gpt-test"
    assert access[missing.headers["x-request-id"]]["error_type"] == "model_not_found"
    assert gateway.secret not in out and "test-key" not in out


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
