"""Fault injection for tests/faults: web processes with their own environment, a private Redis that
can be paused or started late, a blackhole port, a Celery worker that can be killed mid-batch, and
concurrent HTTP bursts. Everything listens on 127.0.0.1 only.

`python -m tests.faults.helpers worker <celery worker args>` runs a Celery worker with fault hooks:
with TG_FAULT_HOLD_AFTER_COMMIT=<file>, the first ledger batch is committed, the file written, and
the worker then hangs before acknowledging the stream entries, so a test can kill it exactly there.
"""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run_worker(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    marker = os.environ.get("TG_FAULT_HOLD_AFTER_COMMIT")
    if marker:
        from billing import ledger

        ingest = ledger.usage_ingest

        def ingest_then_hang(records, **kwargs):
            count = ingest(records, **kwargs)  # committed
            if records and not os.path.exists(marker):
                Path(marker).write_text(str(len(records)))
                time.sleep(3600)  # killed here: the batch is in the ledger, its entries are not acknowledged
            return count

        ledger.usage_ingest = ingest_then_hang
    from celery.bin.celery import main

    sys.argv = ["celery", "-A", "config", "worker", *argv]
    main()


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _run_worker(sys.argv[2:])
    sys.exit(0)

# --- test side -----------------------------------------------------------------------------------

import asyncio
import shutil
import signal
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from django.conf import settings
from django.db import connection

from tests.gateway import _free_port, server_database_url, wait_for

MESSAGES = [{"role": "user", "content": "Hi"}]

needs_servers = pytest.mark.skipif(
    connection.vendor != "postgresql" or not settings.REDIS_URL,
    reason="several processes share state through PostgreSQL and Redis",
)


def child_env(**values) -> dict:
    """The environment of a child process: this one's, without the xdist worker name (settings would
    shift REDIS_URL to a worker database a second time), plus `values`."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}
    environment.update(values)
    return environment


def secrets_env() -> dict:
    """The test process's secrets, so a process with its own data folder hashes and decrypts alike."""
    return {
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "TOLLGATE_KEY_HASH_SECRET": settings.TOLLGATE_KEY_HASH_SECRET,
        "TOLLGATE_ENCRYPTION_KEYS": ",".join(settings.TOLLGATE_ENCRYPTION_KEYS),
    }


def price_echo(gateway, output_per_m="1000") -> None:
    """The mock's 10-word answer to "Hi" costs exactly 0.01 (output at 1000 per 1M tokens, input free)."""
    from billing import services as billing_services

    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD",
                                  input_per_m="0", output_per_m=output_per_m)


# --- processes -----------------------------------------------------------------------------------


class WebProcess:
    """A uvicorn web process (like tests.gateway.RelayProcess) with its own data folder (so its usage
    spool is its own) and a chosen REDIS_URL ("default": the test settings'; None: no Redis)."""

    def __init__(self, *args, redis_url="default", data_dir=None, env=None):
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="tg-fault-web-"))
        self.port = _free_port()
        environment = child_env(**secrets_env(), DATABASE_URL=server_database_url(), TOLLGATE_DATA_DIR=str(self.data_dir),
                                TOLLGATE_EGRESS_ALLOW_HOSTS="127.0.0.1", PYTHONFAULTHANDLER="1", **(env or {}))
        redis_url = settings.REDIS_URL if redis_url == "default" else redis_url
        if redis_url:
            environment["REDIS_URL"] = redis_url
        else:
            environment.pop("REDIS_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(self.port),
             "--http", "relay.coalesce:HttpToolsProtocol", "--log-level", "warning", *args],
            cwd=ROOT, env=environment,
        )
        self.url = f"http://127.0.0.1:{self.port}/v1"
        try:
            wait_for(self.answers, timeout=60)  # a loaded 2-core CI machine boots three at once slowly
        except BaseException:
            self.kill()
            raise

    @property
    def spool(self) -> Path:
        return self.data_dir / "spool"

    def spooled(self) -> list[Path]:
        return sorted(self.spool.glob("usage-*.jsonl")) if self.spool.exists() else []

    def answers(self) -> bool:
        try:
            return httpx.get(self.url + "/models", timeout=1).status_code == 401
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (a graceful shutdown that flushes usage); a process still running after `timeout`
        dumps its threads' tracebacks to stderr and is killed, and the test fails."""
        try:
            if self.process.poll() is None:
                self.process.terminate()
                self.wait_exit(timeout)
        finally:
            self.kill()  # and its data folder

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def wait_exit(self, timeout: float) -> int:
        """The exit code; if the process is stuck, its threads' tracebacks go to stderr before it dies."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: dump every thread
            self.process.wait(10)
            raise


def start_web_processes(n: int, **kwargs) -> list[WebProcess]:
    """Start n web processes at once (each takes seconds to boot)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(WebProcess, **kwargs) for _ in range(n)]
    processes = [f.result() for f in futures if f.exception() is None]
    if len(processes) < n:
        for p in processes:
            p.stop()
        raise next(f.exception() for f in futures if f.exception() is not None)
    return processes


class PrivateRedis:
    """A redis-server of this test alone, on a free loopback port: pausing or stopping it disturbs
    nobody else (CLIENT PAUSE is server-wide, and other suites share the machine's Redis)."""

    def __init__(self):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server is not installed")
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self._dir = tempfile.mkdtemp(prefix="tg-fault-redis-")

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self._dir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self.answers, timeout=10)
        return self

    def client(self, **kwargs):
        import redis

        return redis.Redis.from_url(self.url, **kwargs)

    def answers(self) -> bool:
        import redis

        client = self.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def pause(self, milliseconds: int) -> None:
        """Every client's commands wait (not fail) until the pause ends: Redis "stalls"."""
        client = self.client(socket_timeout=2)
        try:
            client.execute_command("CLIENT", "PAUSE", str(milliseconds), "ALL")
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self._dir, ignore_errors=True)


@contextmanager
def blackhole():
    """A loopback port whose connects hang (SYNs dropped: the listen backlog is full), like a firewalled host."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)  # fills the accept queue
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        try:
            probe.connect(("127.0.0.1", port))
            pytest.skip("this kernel completes connects to a full backlog; no blackhole available")
        except TimeoutError:
            pass
        finally:
            probe.close()
        yield port
    finally:
        filler.close()
        listener.close()


def closed_port() -> int:
    """A loopback port where nothing listens (connection refused at once)."""
    return _free_port()


class Worker:
    """A real Celery worker (with embedded beat) in its own process group, so killing it also kills
    the beat child (a bare SIGKILL of the worker orphans it)."""

    def __init__(self, tmp_path: Path, *, hold_after_commit: Path | None = None, env: dict | None = None, name: str = "w",
                 beat: bool = True):
        environment = child_env(**secrets_env(), DATABASE_URL=server_database_url(), REDIS_URL=settings.REDIS_URL,
                                TOLLGATE_USAGE_CLAIM_IDLE_MS="1000", TOLLGATE_DATA_DIR=str(tmp_path / f"worker-{name}"),
                                TOLLGATE_EGRESS_ALLOW_HOSTS="127.0.0.1", **(env or {}))
        environment.pop("TG_FAULT_HOLD_AFTER_COMMIT", None)
        if hold_after_commit is not None:
            environment["TG_FAULT_HOLD_AFTER_COMMIT"] = str(hold_after_commit)
        self.log = tmp_path / f"worker-{name}.log"
        command = [sys.executable, "-m", "tests.faults.helpers", "worker", *(["--beat"] if beat else []), "--pool", "solo",
                   "--schedule", str(tmp_path / f"beat-{name}"), "--loglevel", "WARNING", "-n", f"faults-{name}-{os.getpid()}@%h"]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def kill(self, sig=signal.SIGKILL, timeout: float = 20) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        try:  # the embedded beat child too, whatever state the worker left it in
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


# --- traffic -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: int | None  # None: no HTTP answer at all (refused, reset before the response)
    code: str = ""
    headers: dict = field(default_factory=dict)
    elapsed: float = 0.0
    started: float = 0.0  # time.time() when sent
    complete: bool = False  # the whole answer arrived (a stream up to its [DONE])
    error: str = ""
    chunks: int = 0  # content chunks received (streams)


# Below uvicorn's 5 s keep-alive timeout (httpx's default is also 5 s): a client must not pick an idle
# connection the server is closing at that very moment (a reset no server can prevent).
KEEPALIVE_EXPIRY = 2.0


async def call(client: httpx.AsyncClient, url: str, secret: str, body: dict, headers: dict | None = None, *,
               timeout: float = 30) -> Outcome:
    """One /chat/completions call; never raises: what happened is in the Outcome."""
    started, t0 = time.time(), time.monotonic()
    outcome = Outcome(None, started=started)
    headers = {"Authorization": f"Bearer {secret}", **(headers or {})}
    try:
        async with client.stream("POST", url + "/chat/completions", json=body, headers=headers, timeout=timeout) as response:
            outcome.status, outcome.headers = response.status_code, dict(response.headers)
            if body.get("stream") and response.status_code == 200:
                async for line in response.aiter_lines():
                    if line.startswith("data: {") and '"error":{' in line[:200]:  # an error event (it may lead with the stream's id)
                        outcome.code = line
                    elif line.startswith("data: {"):
                        outcome.chunks += 1
                    elif line == "data: [DONE]":
                        outcome.complete = True
            else:
                raw = await response.aread()
                outcome.complete = True
                if response.status_code != 200:
                    try:
                        outcome.code = (httpx.Response(200, content=raw).json().get("error") or {}).get("code") or ""
                    except ValueError:
                        outcome.code = raw[:200].decode("latin-1")
    except httpx.HTTPError as exc:
        outcome.error = f"{exc.__class__.__name__}: {exc}"
        outcome.complete = False
    outcome.elapsed = time.monotonic() - t0
    return outcome


def burst(calls: list[tuple], *, concurrency: int = 50, timeout: float = 30) -> list[Outcome]:
    """Run (url, secret, body[, headers]) calls with at most `concurrency` in flight; outcomes in call order."""

    async def run():
        limit = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=KEEPALIVE_EXPIRY)
        async with httpx.AsyncClient(limits=limits) as client:
            async def one(*spec):
                async with limit:
                    return await call(client, *spec, timeout=timeout)

            return await asyncio.gather(*(one(*c) for c in calls))

    return asyncio.run(run())


def chat(max_tokens: int | None = 10, stream: bool = False, model: str = "gpt-test") -> dict:
    body = {"model": model, "messages": MESSAGES}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
    return body


class Traffic:
    """Background load in its own thread and event loop: each lane (tag, url, secret, body, pause)
    sends its call again and again, one at a time, until stopped. Outcomes are kept as (tag, Outcome)."""

    def __init__(self, lanes: list[tuple[str, str, str, dict, float]], *, timeout: float = 10):
        import threading

        self.lanes, self.timeout = lanes, timeout
        self.outcomes: list[tuple[str, Outcome]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> "Traffic":
        self._thread.start()
        return self

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=len(self.lanes) * 2, keepalive_expiry=KEEPALIVE_EXPIRY)
        async with httpx.AsyncClient(limits=limits) as client:
            async def lane(tag, url, secret, body, pause):
                while not self._stop.is_set():
                    self.outcomes.append((tag, await call(client, url, secret, body, timeout=self.timeout)))
                    await asyncio.sleep(pause)

            await asyncio.gather(*(lane(*spec) for spec in self.lanes))

    def stop(self) -> list[tuple[str, Outcome]]:
        self._stop.set()
        self._thread.join(self.timeout + 10)
        return self.outcomes

    def between(self, start: float, end: float, tag: str | None = None) -> list[Outcome]:
        """Outcomes of calls sent in [start, end] (time.time())."""
        return [o for t, o in self.outcomes if start <= o.started <= end and (tag is None or t == tag)]


# --- alert receivers on a chosen port (so they can be "down" first and come up later) ------------


@contextmanager
def webhook_receiver_on(port: int):
    """tests.billing.receivers' webhook receiver, listening on `port`."""
    import threading
    from http.server import ThreadingHTTPServer

    from tests.billing.receivers import Reply, WebhookReceiver, _handler_for

    receiver = WebhookReceiver(Reply(200, b"ok"))
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(receiver))
    server.daemon_threads = True
    receiver.server = server
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def smtp_server_on(port: int):
    """tests.billing.receivers' SMTP server, listening on `port`."""
    from aiosmtpd.controller import Controller

    from tests.billing.receivers import SmtpServer, _MailHandler

    server = SmtpServer("127.0.0.1", port)
    controller = Controller(_MailHandler(server.messages), hostname=server.host, port=port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
