"""A real Prometheus server (Debian's `prometheus`, installed by `make prometheus`) scrapes /metrics from two
web processes while a Celery worker fills the ledger; what Prometheus stores matches the ledger. Without the
binary the same scrapes are read with prometheus-client's parser (README "Metrics")."""

import shutil
import subprocess
from decimal import Decimal

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from billing.models import UsageEvent
from tests.gateway import _free_port, wait_for
from tests.relay.test_metrics import TOKEN, _base, _unique_model, scrape, value

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: web-in-thread
    authorization: {{type: Bearer, credentials: "{token}"}}
    static_configs: [{{targets: ["{first}"]}}]
  - job_name: web-subprocess
    static_configs: [{{targets: ["{second}"]}}]
"""


@pytest.fixture(autouse=True)
def metrics_token(settings):
    """The in-thread relay runs as production (DEBUG off): Prometheus sends the token."""
    settings.TOLLGATE_METRICS_TOKEN = TOKEN


class Prometheus:
    """A Prometheus server on loopback scraping the given targets every second."""

    def __init__(self, tmp_path, first: str, second: str):
        config = tmp_path / "prometheus.yml"
        config.write_text(CONFIG.format(token=TOKEN, first=first, second=second))
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = open(tmp_path / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", "--log.level=warn",
             f"--web.listen-address={self.url.removeprefix('http://')}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_for(self.ready, timeout=60)

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expression: str) -> dict[str, float]:
        """{job: value} of an instant query."""
        answer = httpx.get(self.url + "/api/v1/query", params={"query": expression}, timeout=10).json()
        assert answer["status"] == "success", answer
        return {item["metric"].get("job", ""): float(item["value"][1]) for item in answer["data"]["result"]}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def _ledger(model: str) -> dict:
    rows = UsageEvent.objects.filter(model_name=model)
    sums = rows.aggregate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), cost=Sum("cost"))
    return {"requests": rows.count(), "prompt": sums["prompt"] or 0, "completion": sums["completion"] or 0, "cost": sums["cost"] or Decimal(0)}


@pytest.mark.skipif(not settings.REDIS_URL, reason="the worker drains the Redis stream")
def test_prometheus_scrapes_two_web_processes_and_a_worker_and_matches_the_ledger(gateway, relay_server, second_relay, tmp_path):
    from tests.faults.helpers import Worker

    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs a shared server database")
    model = _unique_model(gateway)
    worker = Worker(tmp_path, name="scrape", beat=False, env={"PROMETHEUS_MULTIPROC_DIR": str(settings.METRICS_DIR)})
    server = Prometheus(tmp_path, _base(relay_server.url).removeprefix("http://"), _base(second_relay).removeprefix("http://")) \
        if shutil.which(PROMETHEUS) else None
    try:
        first, second = gateway.client(), gateway.client()
        second.base_url = second_relay
        messages = [{"role": "user", "content": "How many tokens is this question?"}]
        for _ in range(2):
            first.chat.completions.create(model=model, messages=messages)
        for _ in range(3):
            second.chat.completions.create(model=model, messages=messages, max_tokens=3)
        stream = first.chat.completions.create(model=model, messages=messages, stream=True, stream_options={"include_usage": True})
        assert [chunk for chunk in stream]
        wait_for(lambda: UsageEvent.objects.filter(model_name=model).count() == 6, timeout=60)  # the worker's ingestion
        ledger = _ledger(model)
        assert ledger["completion"] > 0 and ledger["cost"] > 0

        expected = {
            f'sum(tollgate_requests_total{{model="{model}",status="200"}})': ledger["requests"],
            f'sum(tollgate_tokens_total{{model="{model}",kind="prompt"}})': ledger["prompt"],
            f'sum(tollgate_tokens_total{{model="{model}",kind="completion"}})': ledger["completion"],
            f'sum(tollgate_request_duration_seconds_count{{model="{model}"}})': ledger["requests"],
        }
        if server is not None:
            by_job = {expression.replace("sum(", "sum by (job) ("): amount for expression, amount in expected.items()}

            seen = {}

            def prometheus_agrees() -> bool:
                # Each web process serves every process's metrics: both jobs see the same totals.
                seen.update({expression: server.query(expression) for expression in by_job})
                return all(seen[expression] == {"web-in-thread": amount, "web-subprocess": amount} for expression, amount in by_job.items())

            try:
                wait_for(prometheus_agrees, timeout=30, interval=1)
            except AssertionError:
                targets = httpx.get(server.url + "/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
                raise AssertionError(f"expected {by_job}, Prometheus has {seen}; targets {[(t['labels'], t['health'], t['lastError']) for t in targets]}")
            cost = server.query(f'sum by (job) (tollgate_cost_total{{model="{model}",currency="USD"}})')
            assert cost.keys() == {"web-in-thread", "web-subprocess"}
            assert all(amount == pytest.approx(float(ledger["cost"]), rel=1e-9) for amount in cost.values())
            # The worker's ingestion counter reaches Prometheus through the web processes' scrape.
            own_file = settings.METRICS_DIR / f"counter_{worker.process.pid}.db"
            wait_for(own_file.exists, timeout=10)
            assert min(server.query("sum by (job) (tollgate_ledger_records_ingested_total)").values()) >= 1
        else:  # no Prometheus here: the same totals, read with the client library's parser
            def parsed_agree() -> bool:
                for samples in (scrape(relay_server.url), scrape(_base(second_relay), token=None)):
                    if value(samples, "tollgate_requests_total", org=str(gateway.org.pk), model=model, endpoint="chat", status="200") != ledger["requests"]:
                        return False
                    if value(samples, "tollgate_tokens_total", model=model, kind="completion") != ledger["completion"]:
                        return False
                return True

            wait_for(parsed_agree, timeout=30, interval=0.5)
    finally:
        if server is not None:
            server.stop()
        worker.stop()
