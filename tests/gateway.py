"""Fixtures: a real relay (uvicorn serving config.asgi in a thread) in front of a real mock upstream."""

import socket
import threading
import time
from dataclasses import dataclass

import openai
import pytest
import uvicorn

from accounts.models import Role
from accounts.tenancy import OrgContext
from keys import services as key_services
from tests.accounts.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.upstream.server import MockUpstream


@pytest.fixture(scope="session")
def upstream():
    server = MockUpstream().start()
    yield server
    server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThreadedServer:
    def __init__(self, app, port):
        # proxy_headers off, as in the Procfiles: X-Forwarded-For is judged by the app (TOLLGATE_TRUSTED_PROXIES).
        config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="asyncio", http="relay.coalesce:HttpToolsProtocol", lifespan="on", log_level="warning", proxy_headers=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def start(self):
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("relay did not start")
            time.sleep(0.02)
        return self

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def relay_server(django_db_setup, django_db_blocker):
    from config.asgi import application, relay_application

    _flush_test_redis()
    server = ThreadedServer(application, _free_port()).start()
    server.relay = relay_application
    yield server
    server.stop()
    _close_other_sessions(django_db_blocker)


def _flush_test_redis():
    """Counters of an earlier run would otherwise meet the same ids again."""
    from django.conf import settings

    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        client.flushdb()
        client.close()


def _close_other_sessions(django_db_blocker):
    """The relay's worker threads keep connections open; end them so the test database can be dropped."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")


@dataclass
class Gateway:
    org: object
    ctx: OrgContext
    key: object
    secret: str
    credential: object
    model: object
    base_url: str

    def client(self, secret=None, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=secret or self.secret, max_retries=0, timeout=kwargs.pop("timeout", 20), **kwargs)

    def add_model(self, name: str, upstream_model: str, *, credential=None, weight=1, order=0):
        model = key_services.model_create(actor=self.ctx, name=name)
        key_services.deployment_create(actor=self.ctx, model=model, credential=credential or self.credential, upstream_model=upstream_model, weight=weight, order=order)
        return model


@pytest.fixture
def gateway(transactional_db, relay_server, upstream, settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["127.0.0.1"]
    upstream.reset()
    runtime = relay_server.relay.runtime
    if runtime is not None:
        runtime.key_throttle.reset()  # every test calls from 127.0.0.1
        # Embedded state lives in this process, named by row ids; SQLite hands out again the ids an earlier
        # test's rolled-back rows took (PostgreSQL sequences never go back), so each test starts afresh
        # (tests/relay/test_embedded_isolation.py).
        runtime.forget_local_state()
    org = OrganizationFactory()
    owner = MembershipFactory(organization=org, role=Role.OWNER, user=UserFactory()).user
    ctx = OrgContext(organization=org, role=Role.OWNER, user=owner)
    credential = key_services.credential_create(actor=ctx, name="mock-openai", provider="custom", base_url=upstream.url + "/v1", api_key="test-key")
    model = key_services.model_create(actor=ctx, name="gpt-test")
    key_services.deployment_create(actor=ctx, model=model, credential=credential, upstream_model="echo")
    key, secret = key_services.virtual_key_create(actor=ctx, name="test key", user=owner)
    return Gateway(org, ctx, key, secret, credential, model, relay_server.url + "/v1")


def wait_for(predicate, timeout=10.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def drain_usage():
    """Make the relay's recorded usage land in the ledger (Redis stream → ledger when Redis is on)."""
    from django.conf import settings

    if settings.REDIS_URL:
        import redis

        from billing.ledger import usage_drain

        client = redis.Redis.from_url(settings.REDIS_URL)
        try:
            return usage_drain(client)
        finally:
            client.close()
    return 0



def server_database_url() -> str:
    """The test database, as a URL another process can use (PostgreSQL, or the SQLite test file)."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class RelayProcess:
    """A uvicorn web process (subprocess) sharing the test database and Redis."""

    def __init__(self, *extra_args):
        import os
        import subprocess
        import sys
        from pathlib import Path

        from django.conf import settings

        from config.env import DATA_DIR

        self.port = _free_port()
        env = {**os.environ, "DATABASE_URL": server_database_url(), "TOLLGATE_DATA_DIR": str(DATA_DIR), "TOLLGATE_EGRESS_ALLOW_HOSTS": "127.0.0.1"}
        if settings.REDIS_URL:
            env["REDIS_URL"] = settings.REDIS_URL
        else:
            env.pop("REDIS_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(self.port), "--http", "relay.coalesce:HttpToolsProtocol", "--log-level", "warning", *extra_args],
            cwd=Path(__file__).resolve().parent.parent, env=env,
        )
        self.url = f"http://127.0.0.1:{self.port}/v1"
        wait_for(self.answers, timeout=60)  # slow on a loaded machine: Django set-up, the tokenizer

    def answers(self) -> bool:
        import httpx

        try:
            return httpx.get(self.url + "/models", timeout=1).status_code == 401
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        import subprocess

        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:  # a loaded machine; the shutdown path has its own test
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def second_relay(gateway):
    """Another web process sharing PostgreSQL and Redis with the first."""
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("several processes share state through PostgreSQL and Redis")
    relay = RelayProcess()
    try:
        yield relay.url
    finally:
        relay.stop()


def usage_record(**fields):
    """A wire.usage.UsageRecord with neutral values, `fields` overriding them."""
    from wire.usage import UsageRecord

    neutral = dict(
        request_id="req_test", organization_id=1, team_id=None, key_id=1, user_id=None, model_name="m",
        deployment_id=None, provider="", upstream_model="", endpoint="chat", stream=False, status_code=200,
        error_type="", prompt_tokens=0, cached_tokens=0, cache_write_tokens=0, completion_tokens=0,
        usage_source="missing", attempts=1, latency_ms=0, ttft_ms=None, created_at=0.0, cost=None, currency="",
        exchange_rate=None, cost_display=None, price_id=None,
    )
    return UsageRecord(**(neutral | fields))
