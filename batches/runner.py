"""Running a batch: each line goes through the relay's own ASGI app, in this process, as the batch's key.

A line passes exactly what live traffic passes (authentication, admission with RPM/TPM and budgets,
routing, retries, fallbacks, settlement, the ledger): the runner only builds the ASGI call. It
authenticates through the scope entry `relay.pipeline.IN_PROCESS`, which no HTTP client can set, and
the relay tags the line's ledger row with the batch id.

The cap is held like a budget: before a line is dispatched its worst case (the relay's own
`worst_case_micros`: the dearest deployment over the model and its fallbacks, prompt bound plus the
output ceiling) is reserved against the cap; when its answer comes, the reservation is replaced by the
real cost. A line that might not fit waits for the lines in flight to settle; if it still might not fit
with nothing in flight, it and every line after it go to the error file as `batch_cap_reached`.

Crash safety: a line is marked `sent` (committed) before dispatch, with an Idempotency-Key of batch id +
custom_id. A run resuming after a killed worker sends an in-doubt line again with that key: the relay
replays a stored answer (no upstream call, no charge), runs it if it was never claimed, and answers 409
if it was in flight when the worker died: that line is not sent again (it may have been answered and
charged) and lands in the error file as `batch_line_interrupted`, its worst case counted as spent.
"""

import asyncio
import logging
import os
import socket
import time
from datetime import timedelta
from decimal import Decimal

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from batches import lines as batch_lines
from batches.models import Batch, BatchLine
from batches.services import CAP_REACHED, INTERRUPTED, batch_finalize
from billing.ledger import usage_ingest
from relay.app import RelayApp
from relay.idempotency import PENDING_SECONDS
from relay.pipeline import IN_PROCESS, InProcessCaller
from relay.record import worst_case_micros
from relay.runtime import Runtime
from wire import tokens
from wire.pricing import MICROS, to_micros

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
CHUNK = 500
# An in-doubt line older than this might have outlived its idempotency claim: never resent.
RESEND_WITHIN_SECONDS = PENDING_SECONDS - 60


# The runs in this process, so that a worker's warm shutdown can hand them over (batches.tasks).
ACTIVE: set["BatchRunner"] = set()


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{time.monotonic_ns()}"[:64]


async def asgi_post(app, path: str, body: bytes, headers: list, caller: InProcessCaller) -> tuple[int, dict, bytes]:
    """One POST to an ASGI app, in this process: (status, headers, body)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0), IN_PROCESS: caller}
    delivered = asyncio.Event()
    status, response_headers, chunks = 0, {}, []

    async def receive():
        if not delivered.is_set():
            delivered.set()
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the caller never disconnects

    async def send(message):
        nonlocal status, response_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, response_headers, b"".join(chunks)


class BatchRunner:
    def __init__(self, batch_pk: int, *, concurrency: int | None = None):
        self.batch_pk = batch_pk
        self.me = runner_id()
        self.concurrency = concurrency or settings.TOLLGATE_BATCH_CONCURRENCY
        self.app = RelayApp()
        self.in_flight: set[asyncio.Task] = set()
        self.reserved = 0  # micros held for lines in flight
        self.spent = 0  # micros settled (and held for in-doubt lines), as the database has them
        self.stopping = False  # pause, cancel, or the lease lost
        self.next_at = 0.0

    async def run(self) -> str:
        """Run until done, paused or cancelled; returns what happened."""
        batch = await sync_to_async(self._claim)()
        if batch is None:
            return "not_claimed"
        self.batch = batch
        self.cap = to_micros(batch.cap) if batch.cap is not None else None
        self.spent = to_micros(batch.spent + batch.held)
        self.expires_at = batch.expires_at
        self.key_hash = batch.key.key_hash if batch.key is not None else ""
        self.app.runtime = Runtime()
        await self.app.runtime.start()
        beat = asyncio.create_task(self._heartbeat())
        ACTIVE.add(self)
        try:
            if batch.status == Batch.Status.IN_PROGRESS and not self._expired():
                await self._dispatch_all()
            if self.in_flight:
                await asyncio.wait(self.in_flight)
            if await sync_to_async(self._ending)():
                await self._close_in_doubt()
        finally:
            ACTIVE.discard(self)
            beat.cancel()
            await self.app.runtime.stop()  # flush the lines' usage records to the ledger stream
        return await sync_to_async(self._finish)()

    def hand_over(self) -> None:
        """Stop dispatching, let the lines in flight finish, and release the lease (a warm shutdown):
        the sweep resumes the batch on another worker at once."""
        self.stopping = True

    # --- lease and control -------------------------------------------------------------------

    def _claim(self) -> Batch | None:
        stale = timezone.now() - timedelta(seconds=settings.TOLLGATE_BATCH_STALE_SECONDS)
        with transaction.atomic():
            batch = Batch.objects.select_for_update(of=("self",)).select_related("key", "organization").filter(pk=self.batch_pk).first()
            if batch is None or batch.finished:
                return None
            if batch.paused and batch.status != Batch.Status.CANCELLING and not batch.expired_by(timezone.now()):
                return None
            if batch.runner and batch.runner != self.me and batch.heartbeat_at and batch.heartbeat_at > stale:
                return None  # another worker runs it
            batch.runner, batch.heartbeat_at = self.me, timezone.now()
            batch.save(update_fields=["runner", "heartbeat_at"])
            return batch

    def _renew(self) -> bool:
        """Renew the lease; False when the batch should stop dispatching (paused, cancelling, expired, lease lost)."""
        renewed = Batch.objects.filter(pk=self.batch_pk, runner=self.me).update(heartbeat_at=timezone.now())
        state = Batch.objects.filter(pk=self.batch_pk).values("status", "paused", "expires_at").first()
        if state is None:
            return False
        self.expires_at = state["expires_at"]
        return bool(renewed) and state["status"] == Batch.Status.IN_PROGRESS and not state["paused"] and not self._expired()

    def _expired(self) -> bool:
        return self.expires_at is not None and timezone.now() >= self.expires_at

    def _ending(self) -> bool:
        """Whether this run closes the batch (cancelled, or past its window) rather than pausing or handing it over."""
        batch = Batch.objects.filter(pk=self.batch_pk, runner=self.me).first()
        return batch is not None and (batch.status == Batch.Status.CANCELLING
                                      or (batch.status == Batch.Status.IN_PROGRESS and batch.expired_by(timezone.now())))

    async def _close_in_doubt(self) -> None:
        """A closing batch sends nothing more: a line a killed worker left in flight is not asked about again
        (that could send it); it goes to the error file as interrupted, its worst case counted as spent."""
        while chunk := await sync_to_async(self._lines)(0, [BatchLine.State.SENT]):
            for line in chunk:
                worst = await self._worst_case(line)
                await sync_to_async(self._settle)(line, worst, state=BatchLine.State.FAILED, error=INTERRUPTED, held=worst)
                self.spent += worst

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                if not await sync_to_async(self._renew)():
                    self.stopping = True
            except Exception:  # a database blip: the next beat tries again
                log.warning("batch %s: could not renew the lease", self.batch_pk, exc_info=True)

    def _finish(self) -> str:
        with transaction.atomic():
            batch = Batch.objects.select_for_update().get(pk=self.batch_pk)
            if batch.runner != self.me:
                return "lease_lost"
            open_lines = BatchLine.objects.filter(batch=batch, state__in=[BatchLine.State.PENDING, BatchLine.State.SENT]).exists()
            if batch.status == Batch.Status.IN_PROGRESS and (batch.paused or open_lines) and not batch.expired_by(timezone.now()):
                # Paused (a resume starts a new run) or handed over (the sweep starts one at once).
                batch.runner, batch.heartbeat_at = "", None
                batch.save(update_fields=["runner", "heartbeat_at"])
                return "paused" if batch.paused else "released"
        batch = batch_finalize(batch_pk=self.batch_pk)
        return batch.status

    # --- dispatch ---------------------------------------------------------------------------

    def _lines(self, after: int, states: list[str]) -> list[BatchLine]:
        return list(BatchLine.objects.filter(batch_id=self.batch_pk, state__in=states, number__gt=after).order_by("number")[:CHUNK])

    async def _dispatch_all(self) -> None:
        # In-doubt lines first (a killed worker's), then the pending ones in file order.
        for states in ([BatchLine.State.SENT], [BatchLine.State.PENDING]):
            after = 0
            while not self.stopping:
                chunk = await sync_to_async(self._lines)(after, states)
                if not chunk:
                    break
                for line in chunk:
                    if self.stopping:
                        return
                    if not await self._dispatch(line):
                        await self._cap_reached()
                        return
                    after = line.number

    async def _dispatch(self, line: BatchLine) -> bool:
        """Start one line; False when the cap cannot afford it even with nothing in flight."""
        worst = await self._worst_case(line)
        while self.cap is not None and self.spent + self.reserved + worst > self.cap:
            if not self.in_flight:
                return False
            await asyncio.wait(self.in_flight, return_when=asyncio.FIRST_COMPLETED)
        while len(self.in_flight) >= self.concurrency:
            await asyncio.wait(self.in_flight, return_when=asyncio.FIRST_COMPLETED)
        if not self.stopping:
            await self._pace()
        if self._expired():
            self.stopping = True  # past the window: this line and the rest go to the error file as expired
        if self.stopping:
            return True
        in_doubt = line.state == BatchLine.State.SENT
        if in_doubt and (self.app.runtime.redis is None or line.sent_at is None
                         or timezone.now() - line.sent_at > timedelta(seconds=RESEND_WITHIN_SECONDS)):
            # No shared idempotency store to ask, or a claim that may have expired: never resend.
            await sync_to_async(self._settle)(line, worst, state=BatchLine.State.FAILED, error=INTERRUPTED, held=worst)
            self.spent += worst
            return True
        if not in_doubt:
            await sync_to_async(self._mark_sent)(line)
        self.reserved += worst
        task = asyncio.create_task(self._send(line, worst))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)
        return True

    async def _pace(self) -> None:
        """Requests spaced to the key's RPM limit (the relay's limiter still has the last word)."""
        key = await self.app.runtime.cache.key(self.key_hash) if self.key_hash else None
        if key is None or not key.rpm_limit:
            return
        now = time.monotonic()
        if self.next_at > now:
            await asyncio.sleep(self.next_at - now)
        self.next_at = max(now, self.next_at) + 60 / key.rpm_limit

    async def _worst_case(self, line: BatchLine) -> int:
        """The relay's own reservation for this line (relay.pipeline._admit)."""
        rt = self.app.runtime
        model = await rt.cache.model(self.batch.organization_id, line.body.get("model", ""))
        if model is None:
            return 0  # the relay refuses it (404) before any cost
        servers = [model]
        for name in model.policy.fallback_models:
            fallback = await rt.cache.model(self.batch.organization_id, name)
            if fallback is not None and fallback not in servers:
                servers.append(fallback)
        kind = batch_lines.BATCH_ENDPOINTS[line.url]
        output = 0 if kind == "embeddings" else int(line.body.get("max_completion_tokens") or line.body.get("max_tokens") or rt.output_reserve)
        try:
            return worst_case_micros(servers, tokens.bound_prompt(kind, line.body), output, time.time())
        except Exception:
            return 0

    async def _send(self, line: BatchLine, worst: int) -> None:
        headers = [(b"content-type", b"application/json"), (b"idempotency-key", f"{self.batch.public_id}:{line.custom_id}".encode())]
        body = orjson.dumps(line.body)
        try:
            while True:
                caller = InProcessCaller(self.key_hash, self.batch.public_id)
                status, response_headers, answer = await asgi_post(self.app, line.url, body, headers, caller)
                error = _error_code(answer) if status >= 400 else ""
                if status == 429 and error == "rate_limit_exceeded" and not self.stopping:
                    await asyncio.sleep(max(1.0, float(response_headers.get("retry-after") or 1)))
                    continue  # not admitted: nothing was sent or charged
                break
            if status == 409 and error == "idempotency_key_in_use":
                await sync_to_async(self._settle)(line, worst, state=BatchLine.State.FAILED, error=INTERRUPTED, held=worst)
                self.spent += worst
                return
            record = caller.record
            request_id = response_headers.get("x-request-id", "")
            replayed = response_headers.get("idempotent-replayed") == "true"
            if replayed or record is None:
                cost, held, usage = None, worst, None  # an earlier run's answer: its cost is in the ledger, not here
            else:
                cost, held, usage = record.cost_display, 0, record.as_usage().as_fields()
            try:
                parsed = orjson.loads(answer)
            except orjson.JSONDecodeError:
                parsed = {"error": {"message": answer.decode("utf-8", "replace")[:1000], "type": "api_error"}}
            state = BatchLine.State.DONE if 200 <= status < 300 else BatchLine.State.FAILED
            await sync_to_async(self._settle)(line, worst, state=state, status_code=status, request_id=request_id, response=parsed,
                                              cost=cost, held=held, usage=usage)
            self.spent += held + to_micros(cost or 0)
        except Exception:
            log.exception("batch %s line %s failed in the runner", self.batch.public_id, line.custom_id)
            failure = {"code": "batch_runner_error", "message": "The gateway failed to run this request."}
            await sync_to_async(self._settle)(line, worst, state=BatchLine.State.FAILED, error=failure, held=worst)
            self.spent += worst
        finally:
            self.reserved -= worst

    async def _cap_reached(self) -> None:
        if self.in_flight:
            await asyncio.wait(self.in_flight)
        await sync_to_async(self._fail_rest)()

    # --- database writes (sync, in asgiref's thread) -------------------------------------------

    def _mark_sent(self, line: BatchLine) -> None:
        line.state, line.sent_at = BatchLine.State.SENT, timezone.now()
        BatchLine.objects.filter(pk=line.pk).update(state=line.state, sent_at=line.sent_at)

    def _settle(self, line: BatchLine, worst: int, *, state: str, status_code=None, request_id="", response=None, error=None,
                cost: Decimal | None = None, held: int = 0, usage: dict | None = None) -> None:
        with transaction.atomic():
            if usage is not None:
                # The line's ledger row commits with its answer, so a killed worker loses neither. The relay's
                # buffered copy of the same record lands later and is ignored (the ledger is keyed by request id).
                usage_ingest([usage])
            BatchLine.objects.filter(pk=line.pk).update(state=state, status_code=status_code, request_id=request_id, response=response,
                                                        error=error, cost=cost)
            counter = "completed" if state == BatchLine.State.DONE else "failed"
            Batch.objects.filter(pk=self.batch_pk).update(**{counter: F(counter) + 1}, spent=F("spent") + (cost or 0),
                                                          held=F("held") + Decimal(held) / MICROS)

    def _fail_rest(self) -> None:
        with transaction.atomic():
            count = BatchLine.objects.filter(batch_id=self.batch_pk, state=BatchLine.State.PENDING).update(
                state=BatchLine.State.FAILED, error=CAP_REACHED)
            Batch.objects.filter(pk=self.batch_pk).update(failed=F("failed") + count)


def _error_code(answer: bytes) -> str:
    try:
        return str((orjson.loads(answer).get("error") or {}).get("code") or "")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
