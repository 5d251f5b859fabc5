"""Prometheus metrics of the relay, in prometheus-client's multiprocess mode (every web process and
Celery worker writes its own files under PROMETHEUS_MULTIPROC_DIR; a scrape of any process adds
them up).

The hot path only appends the finished usage record to a list (`observe`); relay.observers has the
records folded into metric updates about once a second, so no request waits on a metric. Label values
are bounded: organisation and deployment ids, model names only once a model resolved (a refused body
can name anything), error codes from a closed set.
"""

import logging
import re
import time
from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from wire.errors import RelayError

log = logging.getLogger(__name__)

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_EXTRA_CODES = frozenset({"client_disconnected", "context_length_exceeded", "upstream_connect_error", "too_many_invalid_keys"})
_CODE = re.compile(r"[a-z_]{1,40}")

REQUESTS = Counter("tollgate_requests", "Requests relayed or refused on /v1.", ["org", "model", "endpoint", "status"])
ERRORS = Counter("tollgate_request_errors", "Requests that ended in an error, by error code.", ["endpoint", "code"])
ATTEMPTS = Counter("tollgate_upstream_attempts", "Upstream attempts by deployment and the status they got (retries and fallbacks included).", ["deployment", "status"])
RETRIED = Counter("tollgate_requests_retried", "Requests that needed more than one upstream attempt.", ["model"])
LATENCY = Histogram("tollgate_request_duration_seconds", "Time from the request's arrival to its last byte.", ["endpoint", "model"], buckets=LATENCY_BUCKETS)
TTFT = Histogram("tollgate_time_to_first_token_seconds", "Time to the first streamed byte.", ["model"], buckets=TTFT_BUCKETS)
TOKENS = Counter("tollgate_tokens", "Tokens used, by model and kind.", ["model", "kind"])
COST = Counter("tollgate_cost", "Cost in the price's currency (the ledger keeps the exact Decimal; this is for graphs).", ["model", "currency"])
SNAPSHOT_LOADS = Counter("tollgate_snapshot_cache_loads", "Key and model snapshots loaded from PostgreSQL (cache misses).")
LEASE_GRANTS = Counter("tollgate_lease_grants", "Leases taken from the shared counters (one round trip to Redis each).")


def _known_codes() -> frozenset:
    codes, pending = set(_EXTRA_CODES), [RelayError]
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending += cls.__subclasses__()
    return frozenset(codes)


class RelayMetrics:
    """Collects finished usage records and folds them into the metrics in the background.

    A flush first adds the records up in plain dicts, then touches each metric once per label set:
    the multiprocess value writes (a lock and an mmap write each) are paid per label set and second,
    not per request (measured: ~10 µs per request written one by one, 7% of a relayed request).
    """

    def __init__(self):
        self._pending: list = []  # UsageRecords
        self._codes: frozenset | None = None

    def observe(self, record) -> None:
        self._pending.append(record)

    def flush(self) -> None:
        records, self._pending = self._pending, []
        if not records:
            return
        tally: dict[tuple, list] = {}
        attempts: dict[tuple, int] = {}
        spreads: dict[tuple, list] = {}
        for record in records:
            try:
                _fold(record, tally, attempts, spreads)
            except Exception:  # noqa: BLE001 - a metric must never cost a usage record
                log.exception("metrics: record %s not counted", record.request_id)
        self._write(tally, attempts, spreads)

    def _write(self, tally: dict, attempts: dict, spreads: dict) -> None:
        if self._codes is None:
            self._codes = _known_codes()
        counts: dict[tuple, float] = {}
        for (org, model, endpoint, status, code, currency), (requests, prompt, cached, completion, cost, retried) in tally.items():
            _add(counts, REQUESTS, (org, model, endpoint, status), requests)
            if code:
                _add(counts, ERRORS, (endpoint, code if code in self._codes and _CODE.fullmatch(code) else "other"), requests)
            if retried:
                _add(counts, RETRIED, (model,), retried)
            for kind, amount in (("prompt", prompt), ("cached", cached), ("completion", completion)):
                if amount:
                    _add(counts, TOKENS, (model, kind), amount)
            if cost:
                _add(counts, COST, (model, currency), cost)
        for labels, amount in attempts.items():
            _add(counts, ATTEMPTS, labels, amount)
        for (metric, labels), amount in counts.items():
            metric.labels(*labels).inc(amount)
        for (metric, labels), (buckets, total) in spreads.items():
            child = metric.labels(*labels)
            # What Histogram.observe does per value, once per bucket (prometheus-client keeps
            # per-bucket counts and adds them up at exposition; pinned in requirements.txt).
            for index, count in enumerate(buckets):
                if count:
                    child._buckets[index].inc(count)
            child._sum.inc(total)


def _fold(record, tally: dict, attempts: dict, spreads: dict) -> None:
    """One record into the flush's sums: a dict update or two (measured ~1 µs a record)."""
    deployment = record.deployment_id
    model = record.model_name if deployment is not None else "-"
    endpoint = record.endpoint
    key = (record.organization_id, model, endpoint, record.status_code, record.error_type, record.currency)
    slot = tally.get(key)
    if slot is None:
        slot = tally[key] = [0, 0, 0, 0, 0.0, 0]
    slot[0] += 1
    slot[1] += record.prompt_tokens
    slot[2] += record.cached_tokens
    slot[3] += record.completion_tokens
    if record.cost is not None:
        slot[4] += float(record.cost)
    if record.attempts > 1:
        slot[5] += 1
    for attempt in record.attempt_trail:
        labels = (attempt["deployment"], attempt["status"])
        attempts[labels] = attempts.get(labels, 0) + 1
    if deployment is None:
        return  # refused before admission: no upstream, no latency worth a histogram
    _spread(spreads, LATENCY, (endpoint, model), record.latency_ms / 1000)
    if record.ttft_ms is not None:
        _spread(spreads, TTFT, (model,), record.ttft_ms / 1000)


def _add(counts: dict, metric, labels: tuple, amount: float) -> None:
    key = (metric, labels)
    counts[key] = counts.get(key, 0) + amount


def _spread(spreads: dict, histogram, labels: tuple, value: float) -> None:
    key = (histogram, labels)
    slot = spreads.get(key)
    if slot is None:
        slot = spreads[key] = [[0] * len(histogram._upper_bounds), 0.0]
    slot[0][bisect_left(histogram._upper_bounds, value)] += 1  # the first bound >= value, as observe() picks
    slot[1] += value


async def stream_backlog(redis, stream: str, group: str) -> GaugeMetricFamily:
    """The usage stream's backlog as the drain sees it: entries not yet read or not yet acknowledged,
    and the age of the oldest of them."""
    family = GaugeMetricFamily("tollgate_usage_backlog", "The usage stream's backlog.", labels=["measure"])
    try:
        groups = await redis.xinfo_groups(stream)
    except Exception:  # noqa: BLE001 - no stream yet, or Redis away: report nothing rather than fail the scrape
        return family
    group_info = next((g for g in groups if _text(g.get("name")) == group), None)
    if group_info is None:
        return family
    # The drain deletes what it acknowledges, so every entry still in the stream is pending or unread
    # (Redis's own `lag` is unknown once entries were deleted).
    pending = group_info.get("pending") or 0
    unread = max(0, await redis.xlen(stream) - pending)
    family.add_metric(["pending_entries"], pending)
    family.add_metric(["unread_entries"], unread)
    oldest = None
    if pending:
        summary = await redis.xpending(stream, group)
        oldest = _text(summary.get("min")) if summary else None
    elif unread:
        first = await redis.xrange(stream, count=1)
        oldest = _text(first[0][0]) if first else None
    age = max(0.0, time.time() - int(oldest.split("-")[0]) / 1000) if oldest else 0.0
    family.add_metric(["oldest_age_seconds"], age)
    return family


def cooling_deployments(cooldowns) -> GaugeMetricFamily:
    """Deployments this process currently routes around (1 each), as its cooldown view has them."""
    family = GaugeMetricFamily("tollgate_deployment_cooling", "Deployments cooling down after failures.", labels=["deployment"])
    now = time.time()
    for deployment_id in list(cooldowns.cooling_ids(now)):
        family.add_metric([str(deployment_id)], 1)
    return family


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Fixed:
    """A collector of already-computed families (the async ones, gathered before the scrape)."""

    def __init__(self, families):
        self._families = families

    def collect(self):
        return self._families


def exposition(extra_families=()) -> bytes:
    """Every process's metrics (the multiprocess files) plus the scrape-time families."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    if extra_families:
        registry.register(_Fixed(list(extra_families)))
    return generate_latest(registry)
