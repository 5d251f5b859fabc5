"""Native batches: a batch sent to the provider's own batch API (OpenAI's Batches, Anthropic's Message
Batches) and priced at its batch discount, instead of run line by line through the relay.

Allowed when every line's model is served by deployments on one credential whose preset names a batch API
(wire.presets: `native_batch`, `batch_price`); each model goes to its first deployment (no fallbacks: the
provider runs the lines). Native batches cannot be stopped mid-way, so the whole file's worst case (each
line's prompt bound and output ceiling at the batch price) must fit the cap before anything is sent; it is
held against the cap (`Batch.held`) until the results come, then replaced by what the lines cost.

A Celery step (`batch_native_step`, through batches.tasks.batch_run) submits, cancels or polls, one call at a
time; between steps the batch's `heartbeat_at` is the next poll, so the sweep only steps in if that poll's
message was lost. Each result line is billed from the usage the provider reports at the deployment's price
times the batch price: one ledger row per line (request id = batch id + line number, so a step run twice
inserts nothing twice) with the batch id.
"""

import logging
import time
from datetime import timedelta
from decimal import Decimal

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from batches import (
    lines as batch_lines,
    native_anthropic,
    native_openai,
    services,  # services imports this module too: used at call time only
)
from batches.models import Batch, BatchLine
from batches.native_http import NativeError, Poll, Result
from batches.selectors import budget_left
from billing.ledger import usage_ingest
from keys.models import Deployment
from relay.snapshots import credit_in_force, key_snapshot_by_hash, model_snapshot
from wire import tokens
from wire.adapters import get_adapter
from wire.errors import MalformedUsage, RelayError
from wire.presets import PRESETS
from wire.pricing import price_at
from wire.usage import MAX_USAGE_TOKENS, UsageRecord, usage_number

log = logging.getLogger(__name__)

MODE_FIELD = "tollgate_mode"
# What each batch API takes. Anthropic's gets OpenAI chat lines translated by the relay's own adapter.
ENDPOINTS = {"openai": {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}, "anthropic": {"/v1/chat/completions"}}
MAX_LINES = {"openai": 50_000, "anthropic": 100_000}
MAX_POLL_FAILURES = 30  # transient failures in a row (timeouts, 5xx) before the batch is given up


def mode_requested(*, metadata: dict, mode) -> str:
    """The mode asked for: `mode` (a top-level tollgate_mode or the page's choice), else metadata.tollgate_mode."""
    value = mode if mode not in (None, "") else (metadata or {}).get(MODE_FIELD, Batch.Mode.RELAY)
    if value not in Batch.Mode.values:
        raise ApplicationError(_("tollgate_mode must be \"relay\" or \"native\"."), field=MODE_FIELD)
    return value


def _unavailable(message: str) -> ApplicationError:
    return ApplicationError(message, field=MODE_FIELD, code="native_batch_unavailable")


# --- the plan, checked when the batch is created ---------------------------------------------------


def batch_native_plan(*, key, endpoint: str, parsed: list[batch_lines.Line], cap: Decimal | None) -> tuple[dict, Decimal]:
    """Whether this file can go to a provider's batch API, and its worst case at the batch price. Raises
    ApplicationError (400, with why) when it cannot, or when the worst case does not fit `cap`."""
    snapshot = key_snapshot_by_hash(key.key_hash)
    if snapshot is None or snapshot.sandbox:
        raise _unavailable(_("A sandbox key cannot send a native batch."))
    models, credentials = {}, set()
    for name in sorted({line.body["model"] for line in parsed}):
        if snapshot.allowed_models and name not in snapshot.allowed_models:
            raise _unavailable(_("This key may not use the model '%(model)s'.") % {"model": name})
        model = model_snapshot(organization_id=key.organization_id, name=name)
        if model is None or not model.deployments:
            raise _unavailable(_("No model named '%(model)s' is served here.") % {"model": name})
        ids = [deployment.target.deployment_id for deployment in model.deployments]
        credentials |= set(Deployment.objects.filter(pk__in=ids).values_list("credential_id", flat=True))
        models[name] = model
    if len(credentials) != 1:
        raise _unavailable(_("A native batch needs every model it names served by one provider credential; these models use %(n)d.")
                           % {"n": len(credentials)})
    first = next(iter(models.values())).deployments[0].target
    preset = PRESETS[first.provider]
    if not preset.native_batch or preset.wire != preset.native_batch:
        raise _unavailable(_("%(provider)s has no batch API Tollgate can use (OpenAI and Anthropic have).") % {"provider": preset.label})
    kind = preset.native_batch
    if endpoint not in ENDPOINTS[kind]:
        raise _unavailable(_("%(provider)s's batch API does not take %(endpoint)s here.") % {"provider": preset.label, "endpoint": endpoint})
    if len(parsed) > MAX_LINES[kind]:
        raise _unavailable(_("%(provider)s's batch API takes at most %(max)d requests.") % {"provider": preset.label, "max": MAX_LINES[kind]})
    worst, now = Decimal(0), time.time()
    for line in parsed:
        model = models[line.body["model"]]
        deployment = model.deployments[0]
        price = price_at(deployment.prices, now)
        rate = model.exchange_rate(price.currency, now) if price is not None else None
        if rate is None:
            raise _unavailable(_("The model '%(model)s' has no price (or no exchange rate) here, so a native batch's cost cannot be held.")
                               % {"model": model.name})
        body = upstream_body(kind, line, deployment.target)  # an Anthropic line that cannot be translated is refused now
        output = _output_ceiling(kind, line, body)
        prompt = tokens.bound_prompt(batch_lines.BATCH_ENDPOINTS[line.url], line.body)
        worst += price.worst_case(prompt_tokens=prompt, completion_tokens=output) * rate * preset.batch_price
    if cap is not None and worst > cap:
        raise ApplicationError(
            _("A native batch cannot be stopped once sent, so its whole worst case must fit the cap: up to %(worst)s %(currency)s "
              "at the batch price, over the cap of %(cap)s. Raise the cap, lower max_tokens, or run it through the relay.")
            % {"worst": _money(worst), "currency": key.organization.currency, "cap": _money(cap)},
            field="tollgate_cap", code="native_cap_exceeded")
    for budget in snapshot.budgets:
        # The relay holds each request against the key's hard budgets; a native batch's lines never pass it.
        left = budget_left(budget, now)
        if budget.hard and worst > left:
            raise ApplicationError(
                _("A native batch's whole worst case, up to %(worst)s %(currency)s at the batch price, must fit the %(scope)s budget "
                  "'%(budget)s', which has %(left)s left.")
                % {"worst": _money(worst), "currency": key.organization.currency, "scope": budget.scope, "budget": budget.label,
                   "left": _money(left)}, field=MODE_FIELD, code="native_budget_exceeded")
    plan = {"provider": kind, "preset": first.provider, "credential_id": credentials.pop(),
            "deployments": {name: model.deployments[0].target.deployment_id for name, model in models.items()},
            "worst_case": str(worst), "upstream_id": "", "upstream_file_id": "", "cancel_sent": False, "poll_failures": 0}
    return plan, worst


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.000001')).normalize():f}"


def upstream_body(kind: str, line, target) -> dict:
    """The line as the provider's batch API takes it: the upstream model name; Messages params for Anthropic."""
    body = {**line.body, "model": target.upstream_model}
    if kind == "openai":
        return body
    try:
        request = get_adapter("anthropic").build_request(endpoint="chat", body=body, target=target, stream=False)
    except RelayError as exc:
        raise ApplicationError(_("Line %(n)d: %(message)s") % {"n": line.number, "message": exc.message}, field="body",
                               code="native_batch_unavailable") from exc
    return orjson.loads(request.body)


def _output_ceiling(kind: str, line, body: dict) -> int:
    if batch_lines.BATCH_ENDPOINTS[line.url] == "embeddings":
        return 0
    if kind == "anthropic":
        return int(body["max_tokens"])  # the adapter always sets one
    return int(line.body.get("max_completion_tokens") or line.body.get("max_tokens") or settings.TOLLGATE_OUTPUT_RESERVE_TOKENS)


# --- the steps, in the Celery worker ---------------------------------------------------------------


def is_native(batch_pk: int) -> bool:
    return Batch.objects.filter(pk=batch_pk, mode=Batch.Mode.NATIVE).exists()


def batch_native_step(batch_pk: int, *, me: str) -> str:
    """Submit, cancel or poll once; returns what happened ("waiting" and "retry": step again later)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.TOLLGATE_BATCH_STALE_SECONDS)
    claimed = Batch.objects.filter(pk=batch_pk, mode=Batch.Mode.NATIVE, status__in=[Batch.Status.IN_PROGRESS, Batch.Status.CANCELLING]).filter(
        Q(runner="") | Q(heartbeat_at__lt=stale)).update(runner=me, heartbeat_at=now)
    if not claimed:
        return "not_claimed"
    outcome = "retry"
    try:
        outcome = _advance(Batch.objects.select_related("key").get(pk=batch_pk))
    except Exception:  # a defect or a database blip: tried again at the next poll, never a batch stuck silently
        log.exception("native batch %s: the step failed", batch_pk)
    finally:
        # The next poll is due then; the sweep takes the batch up only if that step's message is lost.
        next_poll = timezone.now() + timedelta(seconds=settings.TOLLGATE_BATCH_NATIVE_POLL_SECONDS)
        Batch.objects.filter(pk=batch_pk, runner=me).update(runner="", heartbeat_at=next_poll)
    return outcome


def _save_state(batch: Batch, **changes) -> None:
    batch.native = {**batch.native, **changes}
    Batch.objects.filter(pk=batch.pk).update(native=batch.native)


def _target(batch: Batch, name: str):
    """The deployment the plan chose for this model, with its credential as it is now."""
    model = model_snapshot(organization_id=batch.organization_id, name=name)
    wanted = batch.native["deployments"][name]
    for deployment in model.deployments if model is not None else ():
        if deployment.target.deployment_id == wanted:
            return model, deployment
    raise NativeError(_("The deployment chosen for '%(model)s' was removed or turned off.") % {"model": name})


def _advance(batch: Batch) -> str:
    state = batch.native
    if batch.status == Batch.Status.CANCELLING and not state.get("upstream_id"):
        _close(batch, Poll(done=True, outcome="cancelled"))
        return "cancelled"
    try:
        names = sorted(state["deployments"])
        _model, deployment = _target(batch, names[0])  # one credential: any deployment's target reaches it
        target = deployment.target
        if not state.get("upstream_id"):
            _submit(batch, state["provider"])
            return "waiting"
        if batch.status == Batch.Status.CANCELLING and not state.get("cancel_sent"):
            (native_openai if state["provider"] == "openai" else native_anthropic).cancel(target, state["upstream_id"])
            _save_state(batch, cancel_sent=True)
        if state["provider"] == "openai":
            poll = native_openai.poll(target, state["upstream_id"])
        else:
            poll = native_anthropic.poll(target, state["upstream_id"], cancel_asked=bool(state.get("cancel_sent")))
    except NativeError as error:
        failures = int(state.get("poll_failures", 0)) + 1
        if error.transient and failures < MAX_POLL_FAILURES:
            log.warning("native batch %s: %s (try %d)", batch.public_id, error.reason, failures)
            _save_state(batch, poll_failures=failures)
            return "retry"
        _close(batch, Poll(done=True, outcome="failed", reason=error.reason))
        return "failed"
    if not poll.done:
        if state.get("poll_failures"):
            _save_state(batch, poll_failures=0)
        return "waiting"
    _close(batch, poll)
    return poll.outcome


def _submit(batch: Batch, kind: str) -> None:
    """Send the lines, saving each id the provider gives as soon as it is given. A step killed after an upload
    uploads again (a stray file); one killed between OpenAI's create and its save is found again by the batch
    id in its metadata, not created twice. (Anthropic's batches carry no metadata: that window remains there.)"""
    lines = list(BatchLine.objects.filter(batch=batch).order_by("number"))
    targets = {name: _target(batch, name)[1].target for name in batch.native["deployments"]}
    bodies = [(line.number, upstream_body(kind, line, targets[line.body["model"]])) for line in lines]
    target = next(iter(targets.values()))
    if kind == "openai":
        file_id = batch.native.get("upstream_file_id") or native_openai.upload(target, endpoint=batch.endpoint, lines=bodies, batch_id=batch.public_id)
        _save_state(batch, upstream_file_id=file_id)
        upstream_id = native_openai.find(target, batch_id=batch.public_id) if batch.native.get("create_started") else ""
        if not upstream_id:
            _save_state(batch, create_started=True)
            upstream_id = native_openai.create(target, file_id=file_id, endpoint=batch.endpoint, batch_id=batch.public_id)
    else:
        upstream_id = native_anthropic.create(target, lines=bodies)
    _save_state(batch, upstream_id=upstream_id, poll_failures=0)


# --- settling the results --------------------------------------------------------------------------

NO_RESULT = {"cancelled": "batch_cancelled", "expired": "batch_expired", "failed": "native_batch_failed", "completed": "native_result_missing"}


def _close(batch: Batch, poll: Poll) -> None:
    """Bill and store every result, list the lines that got none, write the files and end the batch."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update(of=("self",)).select_related("key").get(pk=batch.pk)
        if batch.finished:
            return
        lines = {line.number: line for line in BatchLine.objects.filter(batch=batch, state=BatchLine.State.PENDING)}
        pricing = _Pricing(batch)
        records = []
        for result in poll.results:
            line = lines.pop(result.number, None)
            if line is not None:
                record = pricing.settle(line, result)
                if record is not None:
                    records.append(record)
        usage_ingest(records)
        code = NO_RESULT[poll.outcome]
        message = poll.reason or _("The provider returned no result for this request.")
        missing = list(lines.values())
        for line in missing:
            line.state, line.error = BatchLine.State.FAILED, {"code": code, "message": message}
        BatchLine.objects.bulk_update(pricing.settled + missing, ["state", "status_code", "request_id", "response", "error", "cost"], batch_size=1000)
        spent = sum((line.cost for line in pricing.settled if line.cost is not None), Decimal(0))
        ended = Batch.Status.CANCELLING if poll.outcome == "cancelled" else batch.status
        Batch.objects.filter(pk=batch.pk).update(spent=spent, held=0, status=ended)
        services.batch_finalize(batch_pk=batch.pk)
        if poll.outcome in ("failed", "expired"):
            status = Batch.Status.FAILED if poll.outcome == "failed" else Batch.Status.EXPIRED
            Batch.objects.filter(pk=batch.pk).update(status=status, completed_at=None, failed_at=timezone.now(), errors=[
                {"code": code, "message": poll.reason, "line": None, "param": None}])


class _Pricing:
    """Each answered line billed from the usage the provider reports, at its deployment's price (in force
    when the batch was created) times the preset's batch price."""

    def __init__(self, batch: Batch):
        self.batch, self.at = batch, batch.created_at.timestamp()
        self.key = key_snapshot_by_hash(batch.key.key_hash) if batch.key is not None else None
        self.credit = credit_in_force(batch.key) if batch.key is not None else None
        self.preset = PRESETS[batch.native["preset"]]
        self.kind = batch.native["provider"]
        self.models: dict[str, tuple] = {}
        self.settled: list[BatchLine] = []

    def _deployment(self, name: str):
        if name not in self.models:
            try:
                self.models[name] = _target(self.batch, name)
            except NativeError:
                self.models[name] = (None, None)
        return self.models[name]

    def settle(self, line: BatchLine, result: Result) -> UsageRecord | None:
        line.request_id = f"{self.batch.public_id}-{line.number}"
        self.settled.append(line)
        if result.status_code is None:
            line.state, line.error = BatchLine.State.FAILED, result.error
            return None
        model, deployment = self._deployment(line.body["model"])
        line.status_code = result.status_code
        if result.status_code >= 300 or model is None:
            line.state, line.response = BatchLine.State.FAILED, _loads(result.body)
            return self._record(line, model, deployment, usage=None)
        endpoint = batch_lines.BATCH_ENDPOINTS[line.url]
        try:
            answer, usage = get_adapter(self.kind).parse_response(endpoint=endpoint, body=result.body, target=deployment.target, model=model.name)
        except RelayError as exc:
            line.state, line.status_code = BatchLine.State.FAILED, 502
            line.response = {"error": {"message": exc.message, "type": "upstream_error", "param": None, "code": exc.code}}
            return self._record(line, model, deployment, usage=None)
        line.state, line.response = BatchLine.State.DONE, _loads(answer) if isinstance(answer, bytes) else answer
        return self._record(line, model, deployment, usage=usage)

    def _record(self, line: BatchLine, model, deployment, *, usage) -> UsageRecord | None:
        if self.key is None:
            return None  # the key was deleted: its usage has no row to go to (as the relay's)
        counts, flags, source = _counts(usage), "", "provider"
        if line.state == BatchLine.State.DONE and counts is None:
            # No usable figures: bill the line's worst case, never nothing.
            body = upstream_body(self.kind, line, deployment.target)
            counts = (tokens.bound_prompt(batch_lines.BATCH_ENDPOINTS[line.url], line.body), 0, 0, _output_ceiling(self.kind, line, body))
            flags, source = "batch_usage_missing", "estimated"
        prompt, cached, written, completion = counts or (0, 0, 0, 0)
        cost = rate = display = price_id = None
        currency = ""
        price = price_at(deployment.prices, self.at) if deployment is not None else None
        if price is not None and line.state == BatchLine.State.DONE:
            cost = price.cost(prompt_tokens=prompt, cached_tokens=cached, completion_tokens=completion, at=self.at,
                              cache_write_tokens=written) * self.preset.batch_price
            currency, price_id, rate = price.currency, price.id, model.exchange_rate(price.currency, self.at)
            display = cost * rate if rate is not None else None
        line.cost = display
        target = deployment.target if deployment is not None else None
        return UsageRecord(
            request_id=line.request_id, organization_id=self.batch.organization_id, team_id=self.key.team_id, key_id=self.key.id,
            user_id=self.key.user_id, model_name=line.body["model"][:120], deployment_id=target.deployment_id if target else None,
            provider=self.preset.slug, upstream_model=target.upstream_model if target else "", endpoint=batch_lines.BATCH_ENDPOINTS[line.url],
            stream=False, status_code=line.status_code or 0, error_type="" if line.state == BatchLine.State.DONE else "upstream_error",
            prompt_tokens=prompt, cached_tokens=cached, cache_write_tokens=written, completion_tokens=completion,
            usage_source=source if line.state == BatchLine.State.DONE else "missing", attempts=1, latency_ms=0, ttft_ms=None,
            created_at=time.time(), cost=_text(cost), currency=currency, exchange_rate=_text(rate), cost_display=_text(display),
            price_id=price_id, usage_flags=flags, batch_id=self.batch.public_id,
            credit_account_id=self.credit.id if self.credit is not None and display else None,
        )


def _counts(usage) -> tuple[int, int, int, int] | None:
    """(prompt, cached, cache write, completion) as the provider reported them; None when absent or not
    believable (a non-number, a negative or absurd count, more cached than prompt)."""
    if usage is None:
        return None
    try:
        figures = [usage_number(v) for v in (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.completion_tokens)]
    except MalformedUsage:
        return None
    if any(not 0 <= v <= MAX_USAGE_TOKENS for v in figures) or figures[1] + figures[2] > figures[0]:
        return None
    return tuple(figures)


def _loads(raw) -> dict | None:
    try:
        value = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)
