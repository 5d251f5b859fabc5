"""Per-process relay state, built once at start-up from settings.

The shared (Redis) or local implementations are chosen here, once; the hot path only calls the
interfaces and never branches on the deployment mode.
"""

import asyncio
import gc
import logging

from django.conf import settings

from config.env import DATA_DIR
from relay import responses
from relay.bodies import BodyReader
from relay.budgets import BudgetGate, threshold_notifier
from relay.cache import SnapshotCache
from relay.cooldown import Cooldowns
from relay.credits import CreditGate
from relay.idempotency import IdempotencyStore
from relay.leases import FailoverLeaseStore, LeaseBook, LocalLeaseStore, RedisLeaseStore
from relay.limits import RateLimiter
from relay.metrics import RelayMetrics
from relay.notices import credential_rejected_notifier
from relay.observers import AccessLog, ObservedSink, flush_observers, run_observers, traces_endpoint
from relay.response_cache import LocalAnswerStore, RedisAnswerStore, ResponseCache
from relay.routing import Router
from relay.throttle import FailedKeyThrottle
from relay.upstream import new_session
from relay.usage import LocalSink, RedisStreamSink

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self):
        self.redis = None
        if settings.REDIS_URL:
            import redis.asyncio  # only with shared state: the embedded default never loads it

            self.redis = redis.asyncio.Redis.from_url(
                settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1, health_check_interval=30
            )
            store = FailoverLeaseStore(RedisLeaseStore(self.redis), LocalLeaseStore())
            self.sink = RedisStreamSink(self.redis, DATA_DIR / "spool")
        else:
            store = LocalLeaseStore()
            self.sink = LocalSink()
        self.metrics = RelayMetrics()
        self.observers = [self.metrics] if settings.TOLLGATE_METRICS else []
        if settings.TOLLGATE_ACCESS_LOG:
            self.observers.append(AccessLog())
        self.tracer = _request_tracer()
        if self.tracer is not None:
            self.observers.append(self.tracer)
        if self.observers:
            self.sink = ObservedSink(self.sink, self.observers)
        self.cache = SnapshotCache(self.redis)
        self.limiter = RateLimiter(LeaseBook(store))
        self.budgets = BudgetGate(LeaseBook(store), store, on_threshold=threshold_notifier())
        self.credits = CreditGate(LeaseBook(store), store)
        # Reserved for the output of a request that sets no max_tokens (README "Budgets").
        self.output_reserve = settings.TOLLGATE_OUTPUT_RESERVE_TOKENS
        self.cooldowns = Cooldowns(self.redis)
        # callable(deployment_id, status): tells the organization's admins, once per credential and day.
        self.notify_credential_rejected = credential_rejected_notifier()
        self.idempotency = IdempotencyStore(self.redis)
        self.response_cache = ResponseCache(
            RedisAnswerStore(self.redis) if self.redis is not None else LocalAnswerStore(settings.TOLLGATE_RESPONSE_CACHE_LOCAL_BYTES))
        self.key_throttle = FailedKeyThrottle()
        self.router = Router(self.cooldowns)
        self.session = None
        self.max_body = settings.TOLLGATE_MAX_BODY_BYTES
        self.bodies = BodyReader()
        self._tasks: list[asyncio.Task] = []
        self.started = self.serving = False  # the readiness probe's view of this process

    def forget_local_state(self) -> None:
        """Without Redis, start over as a new process would: counters, leases, cooldowns, round-robin
        positions, Idempotency-Key answers, cached answers and snapshots live in this process, named by
        row ids (tests/gateway.py: SQLite hands a rolled-back test's ids out again)."""
        if self.redis is not None:
            return  # shared state lives in Redis
        for gate in (self.limiter, self.budgets, self.credits):
            gate.book.clear()
        self.budgets.store.clear()
        self.cooldowns.clear()
        self.router.clear()
        self.idempotency.clear()
        self.response_cache.store.clear()
        self.cache.clear()

    async def start(self) -> None:
        self.session = new_session()
        self._tasks = [asyncio.create_task(loop) for loop in (self.cache.watch(), self.sink.run(), self.cooldowns.watch(), run_observers(self.observers))]
        # Everything loaded so far (Django, settings, adapters) lives as long as the process: move it
        # out of the collector's sight. Measured: full collections went from ~65 ms pauses about once
        # a second at c=16 to 1-7 ms, p99 66 -> 12 ms (benchmarks/README.md).
        gc.collect()
        gc.freeze()
        self.started = self.serving = True

    async def stop(self) -> None:
        """Graceful shutdown: stop the background loops, then flush every pending usage record."""
        self.serving = False
        await cancel_until_done(self._tasks)
        await responses.writer.drain()  # stored responses still being written
        await self.sink.flush()
        flush_observers(self.observers)
        if self.tracer is not None:  # exports the last spans; a collector that is away must not hold shutdown
            try:
                await asyncio.wait_for(asyncio.to_thread(self.tracer.close), timeout=5)
            except TimeoutError:
                log.warning("the last traces were not exported: the OTLP collector did not answer")
        self.bodies.close()
        if self.session is not None:
            await self.session.close()
        if self.redis is not None:
            await self.redis.aclose()


def _request_tracer():
    """The traces observer when an OTLP endpoint is configured; OpenTelemetry is imported only then."""
    endpoint = traces_endpoint(settings.TOLLGATE_OTLP_ENDPOINT)
    if endpoint is None:
        return None
    from relay.tracing import RequestTracer

    log.info("tracing /v1 requests over OTLP")  # not the URL: it may carry credentials
    return RequestTracer(endpoint)


async def cancel_until_done(tasks: list[asyncio.Task], *, rounds: int = 20, wait: float = 0.25) -> None:
    """Cancel the tasks, cancelling again any that carry on: Python 3.11's `asyncio.wait_for` can swallow
    a cancellation that lands as its inner call completes, and a loop that survived would hold shutdown."""
    pending = {task for task in tasks if not task.done()}
    for _ in range(rounds):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=wait)
    if pending:
        log.warning("%d background loops ignored cancellation at shutdown", len(pending))
