"""/metrics: Prometheus text from every process (multiprocess files), matching the ledger, guarded by a
token, with bounded labels."""

import secrets
from decimal import Decimal

import httpx
import openai
import pytest
from django.conf import settings
from django.db.models import Sum
from prometheus_client.parser import text_string_to_metric_families

from billing import services as billing_services
from billing.models import UsageEvent
from relay.metrics import RelayMetrics
from tests.gateway import drain_usage, usage_record, wait_for

TOKEN = "scrape-" + secrets.token_hex(8)


@pytest.fixture(autouse=True)
def metrics_token(settings):
    """pytest-django runs with DEBUG off, as production: scraping the in-thread relay needs the token."""
    settings.TOLLGATE_METRICS_TOKEN = TOKEN


def scrape(base_url: str, token: str | None = TOKEN) -> dict:
    """{(sample name, frozenset(labels)): value} of one scrape."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(base_url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text) for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _unique_model(gateway) -> str:
    """A model name no other test (or xdist worker, which shares the metric files) uses."""
    name = "metrics-" + secrets.token_hex(4)
    gateway.add_model(name, "echo")
    billing_services.price_create(actor=gateway.ctx, provider="custom", upstream_model="echo", currency="USD", input_per_m="1000", output_per_m="2000")
    return name


def _base(url: str) -> str:
    return url.removesuffix("/v1")


def test_metrics_count_requests_tokens_and_cost_as_the_ledger_does(gateway, relay_server):
    model = _unique_model(gateway)
    client = gateway.client()
    for _ in range(3):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
    list(client.chat.completions.create(model=model, stream=True, messages=[{"role": "user", "content": "Hi"}]))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-" + secrets.token_hex(4), messages=[{"role": "user", "content": "Hi"}])

    samples = scrape(relay_server.url)
    org = str(gateway.org.pk)
    assert value(samples, "tollgate_requests_total", org=org, model=model, endpoint="chat", status="200") == 4
    assert value(samples, "tollgate_time_to_first_token_seconds_count", model=model) == 1
    assert value(samples, "tollgate_request_duration_seconds_count", endpoint="chat", model=model) == 4

    wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(organization=gateway.org, model_name=model).count() == 4)[1])
    ledger = UsageEvent.objects.filter(organization=gateway.org, model_name=model).aggregate(
        prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), cost=Sum("cost"))
    assert value(samples, "tollgate_tokens_total", model=model, kind="prompt") == ledger["prompt"]
    assert value(samples, "tollgate_tokens_total", model=model, kind="completion") == ledger["completion"]
    assert Decimal(str(value(samples, "tollgate_cost_total", model=model, currency="USD"))).quantize(Decimal("1e-9")) == ledger["cost"].quantize(Decimal("1e-9"))


def test_a_refused_body_cannot_mint_label_values(gateway, relay_server):
    hostile = "evil-" + secrets.token_hex(8)
    with pytest.raises(openai.NotFoundError):
        gateway.client().chat.completions.create(model=hostile, messages=[{"role": "user", "content": "Hi"}])
    text = httpx.get(relay_server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    assert hostile not in text
    assert 'tollgate_request_errors_total{code="model_not_found",endpoint="chat"}' in text


def test_error_codes_outside_the_known_set_are_folded_into_other():
    metrics = RelayMetrics()
    record = usage_record(
        request_id="r", organization_id=1, model_name="m", deployment_id=None, endpoint="chat",
        status_code=502, error_type="Some Upstream-Invented Code " + secrets.token_hex(4), attempt_trail=[],
        attempts=1, prompt_tokens=0, cached_tokens=0, completion_tokens=0, cost=None, currency="",
        latency_ms=5, ttft_ms=None,
    )
    from relay import metrics as module

    before = module.ERRORS.labels("chat", "other")._value.get()
    metrics.observe(record)
    metrics.flush()
    assert module.ERRORS.labels("chat", "other")._value.get() == before + 1


def test_metrics_need_the_token_when_one_is_set(gateway, relay_server):
    assert httpx.get(relay_server.url + "/metrics", timeout=10).status_code == 404
    assert httpx.get(relay_server.url + "/metrics", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 404
    scrape(relay_server.url)


def test_without_a_token_production_mode_publishes_nothing(gateway, relay_server, settings):
    settings.TOLLGATE_METRICS_TOKEN = ""
    settings.DEBUG = False
    response = httpx.get(relay_server.url + "/metrics", timeout=10)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_two_web_processes_are_added_up_and_match_the_ledger(gateway, relay_server, second_relay):
    """Two uvicorn processes (this test's thread and a subprocess) write their own metric files; a
    scrape of either adds both up."""
    model = _unique_model(gateway)
    first = gateway.client()
    second = gateway.client()
    second.base_url = second_relay
    for _ in range(2):
        first.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
    for _ in range(3):
        second.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
    org = str(gateway.org.pk)

    def both_counted():
        # The subprocess runs as `make run` does (DEBUG on, no token): loopback may scrape it.
        return value(scrape(_base(second_relay), token=None), "tollgate_requests_total", org=org, model=model, endpoint="chat", status="200") == 5

    wait_for(both_counted, timeout=10, interval=0.5)  # the subprocess folds its records in within a second
    assert value(scrape(relay_server.url), "tollgate_requests_total", org=org, model=model, endpoint="chat", status="200") == 5
    wait_for(lambda: (drain_usage(), UsageEvent.objects.filter(organization=gateway.org, model_name=model).count() == 5)[1])


def test_usage_stream_backlog_is_reported(gateway, relay_server):
    if not settings.REDIS_URL:
        pytest.skip("the usage stream lives in Redis")
    drain_usage()  # the consumer group exists, nothing unread
    for _ in range(3):
        gateway.client().chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}])

    def unread():
        return value(scrape(relay_server.url), "tollgate_usage_backlog", measure="unread_entries")

    assert wait_for(lambda: unread() >= 1, timeout=10)  # an entry carries a flushed batch of records
    assert value(scrape(relay_server.url), "tollgate_usage_backlog", measure="oldest_age_seconds") >= 0
    drain_usage()
    assert unread() == 0


def test_the_grafana_dashboard_queries_only_metrics_that_exist():
    import json
    import re
    from pathlib import Path

    from prometheus_client.metrics import MetricWrapperBase

    from billing import metrics as ledger_metrics
    from relay import metrics as module

    exposed = {value._name for source in (module, ledger_metrics) for value in vars(source).values() if isinstance(value, MetricWrapperBase)}
    exposed |= {"tollgate_deployment_cooling", "tollgate_usage_backlog"}  # scrape-time families
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "ops" / "grafana-dashboard.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"] for name in re.findall(r"tollgate_\w+", target["expr"])}
    assert queried
    for name in queried:
        assert re.sub(r"_(total|bucket|count|sum)$", "", name) in exposed, name


@pytest.mark.skipif(not settings.REDIS_URL, reason="the worker drains the Redis stream")
def test_a_celery_worker_reports_what_it_ingested(gateway, relay_server, tmp_path):
    """The worker writes its own metric files beside the web processes'; its count of ledger rows is
    the ledger's, and a scrape of the web process includes it."""
    from django.db import connection
    from prometheus_client.multiprocess import MultiProcessCollector

    from tests.faults.helpers import Worker

    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs a shared server database")
    worker = Worker(tmp_path, name="metrics", beat=False, env={"PROMETHEUS_MULTIPROC_DIR": str(settings.METRICS_DIR)})
    try:
        client = gateway.client()
        for _ in range(3):
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hi"}])
        wait_for(lambda: UsageEvent.objects.filter(organization=gateway.org).count() == 3, timeout=60)
        own_file = settings.METRICS_DIR / f"counter_{worker.process.pid}.db"
        wait_for(own_file.exists, timeout=10)
        ingested = {s.name: s.value for family in MultiProcessCollector.merge([str(own_file)]) for s in family.samples}
        assert ingested["tollgate_ledger_records_ingested_total"] == 3
        assert value(scrape(relay_server.url), "tollgate_ledger_records_ingested_total") >= 3
    finally:
        worker.stop()
