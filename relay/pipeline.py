"""The /v1 request flow, one straight line of stages over one per-request `Exchange` (relay/exchange.py):

    authenticate → parse → (idempotency.run_once) → resolve → admit → forward → settle

Each stage is a small function of (rt, exchange) with one job. `_admit` reserves (limits, credit,
budgets, a downgrade) and `_settle` gives back or charges what it reserved and records the request;
they always pair. A request refused before admission still gets its ledger row (`_refuse`).
Retries and fallbacks happen only before the first byte reaches the client; after that an error
becomes an SSE error event. Usage is recorded in `finally`, so cancelled streams count too.
Upstream answers are untrusted input: a stream is metered and cut past its output ceiling or its
deadline, an answer that cannot be read is a 502 `upstream_malformed` (an error event in a stream),
and no request is billed for more output than its ceiling (README "Budgets and limits").
"""

import asyncio
import logging
import time
from decimal import Decimal

import orjson

from relay import control, idempotency, messages, responses
from relay.exchange import ClientGone, Exchange
from relay.record import Record, completion_text, rerank_units, stream_text, worst_case_micros
from relay.routing import backoff_delay
from relay.sandbox import sandboxed
from relay.streaming import OutputLimitExceeded, OutputMeter, output_ceiling
from relay.upstream import iter_body, read_body, send
from wire import tokens
from wire.adapters import get_adapter
from wire.adapters.base import Usage
from wire.adapters.rerank import attach_documents
from wire.errors import (
    InvalidApiKey,
    InvalidRequest,
    MalformedUsage,
    MethodNotAllowed,
    ModelNotAllowed,
    ModelNotFound,
    NotFound,
    RelayError,
    UpstreamCredentialRejected,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    redact_secrets,
    target_secrets,
)
from wire.pricing import price_at, to_micros
from wire.sse import DONE, SSEParser, encode_chunk, encode_error

log = logging.getLogger(__name__)
# What a parser raises on a body or event it cannot read (orjson.JSONDecodeError is a ValueError):
# the answer is malformed, never a 500 (README "Budgets and limits").
PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError)

ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/embeddings": "embeddings", "/v1/rerank": "rerank"}
# Every relayed path (POST only) and the endpoint it records: OpenAI's, Anthropic's Messages, Responses.
RELAYED = {**ENDPOINTS, **messages.PATHS, responses.PATH: responses.ENDPOINT}
NO_OUTPUT = frozenset({"embeddings", "rerank"})  # endpoints that generate no tokens: nothing to reserve or meter
JSON = [(b"content-type", b"application/json")]
KEY_HEADERS = (b"authorization", b"api-key", b"x-api-key")
UNSUPPORTED = "The model '{model}' does not support the {endpoint} endpoint."
# The ASGI scope entry of an in-process caller (batches.runner): an InProcessCaller. An HTTP server builds
# the scope from the request line and headers, so no client over the network can set it.
IN_PROCESS = "tollgate.in_process"


class InProcessCaller:
    """A request made inside this process on a key's behalf (a batch line): it authenticates by the key's
    stored hash, tags its ledger row with `batch_id`, and reads back its finished usage record."""

    __slots__ = ("key_hash", "batch_id", "record")

    def __init__(self, key_hash: str, batch_id: str):
        self.key_hash, self.batch_id, self.record = key_hash, batch_id, None


async def handle(rt, conn) -> None:
    try:
        await _route(rt, conn)
    except RelayError as error:
        if not conn.started:
            if conn.scope["path"] in messages.PATHS:  # Anthropic's clients read Anthropic's error shape
                status, body = messages.error_body(error, conn.request_id)
                await conn.respond(status, body, [*JSON, *((k.encode(), v.encode()) for k, v in error.headers.items())])
            else:
                await conn.respond_error(error)
    except ClientGone:
        pass
    except Exception:
        log.exception("relay failure on %s", conn.request_id)
        if not conn.started:
            await conn.respond_error(RelayError("The gateway failed to handle this request."))


async def _route(rt, conn) -> None:
    path, method = conn.scope["path"], conn.scope["method"]
    endpoint = RELAYED.get(path)
    if endpoint is not None:
        if method != "POST":
            raise MethodNotAllowed(f"Use POST for {path}.")
        await _relay(rt, conn, endpoint)
    elif path.startswith(responses.STORED_PREFIX):  # a stored response: GET or DELETE
        await responses.handle_stored(conn, await _authenticate(rt, conn), path[len(responses.STORED_PREFIX) :])
    elif path == "/v1/models" or path.startswith("/v1/models/"):
        if method != "GET":
            raise MethodNotAllowed(f"Use GET for {path}.")
        await _models(rt, conn, path[len("/v1/models/") :] if path != "/v1/models" else None)
    else:
        raise NotFound(f"Unknown endpoint {method} {path}.")


async def _authenticate(rt, conn):
    caller = conn.scope.get(IN_PROCESS)
    if caller is not None:
        key = await rt.cache.key(caller.key_hash)
        if key is None or (key.expires_at is not None and key.expires_at <= time.time()):
            raise InvalidApiKey("Incorrect, expired or revoked API key.")
        return key
    secret = None
    for name in KEY_HEADERS:
        value = conn.header(name)
        if value:
            secret = value[7:].strip() if name == b"authorization" and value[:7].lower() == "bearer " else value.strip()
            break
    if not secret:
        raise InvalidApiKey("Missing API key. Send it as 'Authorization: Bearer <key>'.")
    # The key is checked first: the bad-key throttle never refuses a valid key (relay/throttle.py).
    key = await rt.key_throttle.lookup(conn.scope, control.keyed_hash(secret), rt.cache) if len(secret) <= 200 else None
    if key is None or (key.expires_at is not None and key.expires_at <= time.time()):
        rt.key_throttle.failed(conn.scope)
        raise InvalidApiKey("Incorrect, expired or revoked API key.")
    return key


async def _models(rt, conn, model_id: str | None) -> None:
    key = await _authenticate(rt, conn)
    names = [(name, created) for name, created in await rt.cache.model_names(key.organization_id)
             if not key.allowed_models or name in key.allowed_models]
    if model_id is None:
        data = [{"id": name, "object": "model", "created": created, "owned_by": "tollgate"} for name, created in names]
        await conn.respond(200, orjson.dumps({"object": "list", "data": data}))
        return
    for name, created in names:
        if name == model_id:
            await conn.respond(200, orjson.dumps({"id": name, "object": "model", "created": created, "owned_by": "tollgate"}))
            return
    raise ModelNotFound(f"The model '{model_id}' does not exist.", param="model")


# --- The flow: one Exchange, stage after stage ---


async def _relay(rt, conn, endpoint: str) -> None:
    x = Exchange(conn, endpoint, await _authenticate(rt, conn))
    try:
        await _parse(rt, x)
        # Idempotency-Key: claim, replay or run once, release (relay/idempotency.py); without the header, _serve.
        await idempotency.run_once(rt, x, _serve)
    except RelayError as error:
        if x.record is None:  # refused before admission (nothing recorded it yet)
            _refuse(rt, x, error)
        raise


async def _parse(rt, x: Exchange) -> None:
    """The request's JSON body, checked (relay/bodies.py reads large ones off the event loop)."""
    conn = x.conn
    try:
        raw = await conn.read_body(rt.max_body)
        content_type = conn.header(b"content-type")
        if content_type and "json" not in content_type.lower():
            raise InvalidRequest("Content-Type must be application/json.")
        if not raw:
            raise InvalidRequest("The request body is empty; send a JSON object.")
        x.body = await rt.bodies.read(raw, x.endpoint)
        if x.endpoint == responses.ENDPOINT:
            x.body = await responses.prepare(x.key, x.body)  # previous_response_id: its turns, read only when given
    except RelayError as error:
        if x.body is None:  # what the body reader saw of a body it refused, for the ledger row
            x.body = getattr(error, "body_seen", None)
        raise


async def _serve(rt, x: Exchange) -> Record | None:
    """Answer the parsed request: from the response cache, or admitted, forwarded and settled."""
    if not await _resolve(rt, x):
        return x.record  # the response cache answered
    await _admit(rt, x)
    # Streams watch for the client leaving; a whole answer is simply finished (and billed).
    watch = DisconnectWatch(x.conn) if x.stream else None
    try:
        await _forward(rt, x)
    except RelayError as error:
        x.record.fail(error)
        raise
    except asyncio.CancelledError:
        x.record.status_code, x.record.error_type = 499, "client_disconnected"
        if watch is None or not watch.gone:
            raise  # the server is cancelling us (shutdown): record and pass it on
        asyncio.current_task().uncancel()
        raise ClientGone() from None
    except ClientGone:
        x.record.status_code, x.record.error_type = 499, "client_disconnected"
        raise
    finally:
        if watch is not None:
            watch.stop()
        await _settle(rt, x)
    return x.record


async def _resolve(rt, x: Exchange) -> bool:
    """The model the key may use, as it answers this key (a sandbox key's: the demo); False when the
    response cache answered instead (relay/sandbox.py, relay/response_cache.py)."""
    key, body = x.key, x.body
    name = body["model"]
    if key.allowed_models and name not in key.allowed_models:
        raise ModelNotAllowed(f"This key may not use the model '{name}'.", param="model")
    model = await rt.cache.model(key.organization_id, name)
    if model is None or not model.deployments:
        raise ModelNotFound(f"The model '{name}' does not exist or has no deployment.", param="model")
    x.model = sandboxed(model) if key.sandbox else model
    x.lookup = rt.response_cache.plan(x.conn, key, x.model, x.endpoint, body)
    if x.lookup is not None:
        x.record = await rt.response_cache.serve(x.conn, key, x.model, x.endpoint, body, x.lookup, rt.sink)
        if x.record is not None:
            return False
    x.stream = bool(body.get("stream")) and x.endpoint not in NO_OUTPUT
    return True


async def _admit(rt, x: Exchange) -> None:
    """Reserve what the request may use: a request and its worst-case tokens from the key's limits,
    its worst-case cost from the credit balance and every budget (a soft budget may downgrade the
    model). `_settle` gives back or charges exactly this. A refusal is recorded and raised."""
    key, body, endpoint = x.key, x.body, x.endpoint
    no_output = endpoint in NO_OUTPUT
    prompt_estimate = tokens.bound_prompt(endpoint, body)
    max_output = 0 if no_output else int(body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens") or 0)
    # Counting tokens is free: it takes a request from RPM, but no tokens and no budget.
    free = endpoint == "count_tokens"
    x.reserved_tokens = 0 if free else prompt_estimate + max_output
    x.record = record = _new_record(x, x.model, x.stream)
    record.cache = x.lookup
    # The most output this request may be delivered and billed (README "Budgets and limits").
    x.ceiling = None if no_output else output_ceiling(max_output or rt.output_reserve)
    try:
        x.limit_headers, x.tpm_counter = await rt.limiter.admit(key, x.reserved_tokens)
        # Pricing the worst case is only needed when there is something to hold it against; a sandbox key draws none.
        if (key.budgets or key.credit) and not free and not key.sandbox:
            output = 0 if no_output else max_output or rt.output_reserve
            downgrade = await _reserve_money(rt, x, prompt_estimate, output)
            if downgrade and downgrade != x.model.name:
                await _downgrade(rt, x, downgrade)
    except RelayError as error:
        record.fail(error)
        record.finish()
        rt.sink.emit(record.as_usage())
        raise


async def _reserve_money(rt, x: Exchange, prompt_estimate: int, output: int) -> str:
    """Hold the worst-case cost against the credit balance and every budget; the model a soft budget
    downgrades to ("" for none)."""
    key, model = x.key, x.model
    hard_budget = next((b for b in key.budgets if b.hard), None) or key.credit  # an unknown cost must not pass it
    servers = [model, *await _fallback_models(rt, model, key)]  # a fallback may answer, at its price
    units = rerank_units(x.body, tokens.count_bound) if x.endpoint == "rerank" else 0  # priced per search unit, maybe
    x.reserved_micros = worst_case_micros(servers, prompt_estimate, output, x.record.created_at, hard_budget=hard_budget, search_units=units)
    x.credit = await rt.credits.reserve(key, x.reserved_micros)  # both the balance and every budget must hold it
    try:
        x.held, downgrade = await rt.budgets.reserve(key, x.reserved_micros, x.record.created_at)
    except RelayError:
        await rt.credits.release(x.credit, x.reserved_micros)
        raise
    return downgrade


async def _downgrade(rt, x: Exchange, name: str) -> None:
    cheaper = await rt.cache.model(x.key.organization_id, name)
    if cheaper is not None and cheaper.deployments:
        record = x.record
        record.downgraded_model = x.model  # priced too, for the savings (relay.record)
        record.downgraded_from, record.model, record.model_name, x.model = x.model.name, cheaper, cheaper.name, cheaper


async def _settle(rt, x: Exchange) -> None:
    """What `_admit` reserved, given back or charged at what was used; the request recorded (and its
    answer kept by the response cache when it may be)."""
    record = x.record
    if x.ceiling is not None and record.completion_tokens > x.ceiling:
        record.completion_tokens = x.ceiling  # never billed past what the request allowed, margin included
    record.finish()
    await rt.limiter.settle(x.tpm_counter, x.reserved_tokens, record.prompt_tokens + record.completion_tokens)
    if x.held:
        await rt.budgets.settle(x.held, x.reserved_micros, to_micros(record.cost_display or 0))
    await rt.credits.settle(x.credit, x.reserved_micros, to_micros(record.cost_display or 0))
    rt.sink.emit(record.as_usage())
    if x.lookup is not None:
        rt.response_cache.keep(record)


def _new_record(x: Exchange, model, stream: bool) -> Record:
    record = Record(x.conn.request_id, x.key, model, x.endpoint, stream, x.body)
    caller = x.conn.scope.get(IN_PROCESS)
    if caller is not None:
        record.batch_id, caller.record = caller.batch_id, record
    return record


def _refuse(rt, x: Exchange, error: RelayError) -> None:
    """A known key's request refused before admission still gets its ledger row (no deployment, no
    cost), so the key's owner finds the 400s, 403s and 404s in the request log. Unknown keys get none:
    they belong to no organization, and their flood is throttled instead."""
    record = _new_record(x, None, isinstance(x.body, dict) and x.body.get("stream") is True)
    record.fail(error)
    record.finish()
    rt.sink.emit(record.as_usage())


async def _forward(rt, x: Exchange) -> None:
    """Try deployments in plan order until one answers; retries and fallbacks only before the first byte."""
    adapter_for = _adapters(x)
    model, policy = x.model, x.model.policy
    x.deadline = time.monotonic() + policy.deadline_seconds
    primary_cost = None
    async for deployment in _candidates(rt, model, x.key):
        adapter = adapter_for(deployment.target.wire)
        if x.endpoint not in adapter.endpoints:
            unsupported = getattr(adapter, "unsupported", UNSUPPORTED)
            x.last_error = x.last_error or InvalidRequest(unsupported.format(model=model.name, endpoint=x.endpoint), param="model")
            continue
        if policy.fallback_max_price_ratio is not None:  # priced only when a cap is configured
            cost = _unit_cost(deployment, x.record.created_at)
            primary_cost = cost if primary_cost is None else primary_cost
            if _too_dear(policy, primary_cost, cost):
                continue
        if x.context_limit and (deployment.context_window or 0) <= x.context_limit:
            continue
        response = await _try_deployment(rt, x, deployment, adapter)
        if response is not None:
            headers = _answer_headers(x, deployment, adapter)
            if x.stream:
                await _stream(x, adapter, response, deployment.target, headers)
            else:
                await _whole(x, adapter, response, deployment.target, headers)
            return
    raise x.last_error or ModelNotFound(f"The model '{model.name}' has no usable deployment.", param="model")


def _adapters(x: Exchange):
    """wire -> adapter for this request: the endpoint's own translators for Messages and Responses."""
    if x.endpoint in messages.ENDPOINTS:
        return messages.adapters(x.conn)
    if x.endpoint == responses.ENDPOINT:
        return responses.adapters(x.key, x.body)
    return get_adapter


async def _try_deployment(rt, x: Exchange, deployment, adapter):
    """One deployment, retried as the policy allows: its response, or None to move on to the next."""
    policy, record, target = x.model.policy, x.record, deployment.target
    for retry in range(policy.retries_per_deployment + 1):
        if record.attempts >= policy.max_attempts or time.monotonic() >= x.deadline:
            raise x.last_error or UpstreamTimeout("The request's deadline passed before an upstream answered.")
        record.attempt(record.attempts + 1, deployment)
        started = time.perf_counter()
        try:
            response = await _call(rt, x, adapter, target)
        except UpstreamError as error:
            record.trail(deployment, error.upstream_status or error.status, error.code, started)
            x.last_error = error
            if not await _after_failure(rt, x, deployment, error, retry):
                return None
            continue
        record.trail(deployment, response.status, "", started)
        if not x.key.sandbox:  # the demo model answered a sandbox key: nothing learnt of the deployment's health
            await rt.cooldowns.success(target.deployment_id)
        return response
    return None


async def _after_failure(rt, x: Exchange, deployment, error: UpstreamError, retry: int) -> bool:
    """After a failed attempt: True to try the same deployment again (after a backoff), False to move on;
    raises when no other deployment should be tried."""
    policy, target = x.model.policy, deployment.target
    if isinstance(error, UpstreamCredentialRejected):
        # The same credential will be refused again: no retry here, cool the deployment now,
        # tell the admins (once a day), and let another deployment answer.
        await rt.cooldowns.reject(target.deployment_id, policy)
        rt.notify_credential_rejected(target.deployment_id, error.upstream_status)
        return False
    await rt.cooldowns.failure(target.deployment_id, policy)
    if error.code == "context_length_exceeded" and policy.context_fallback:
        x.context_limit = deployment.context_window or 0
        return False
    if not _retryable(policy, error):
        raise error
    if retry < policy.retries_per_deployment:
        pause = backoff_delay(retry, error.retry_after)
        if time.monotonic() + pause >= x.deadline:
            return False
        await asyncio.sleep(pause)
    return True


def _answer_headers(x: Exchange, deployment, adapter) -> list:
    return [
        *x.limit_headers,
        (b"x-tollgate-model", x.model.name.encode()),
        (b"x-tollgate-deployment", str(deployment.target.deployment_id).encode()),
        (b"x-tollgate-attempts", str(x.record.attempts).encode()),
        *getattr(adapter, "response_headers", ()),  # e.g. a token count that is an estimate (relay.messages)
        *(x.lookup.headers if x.lookup is not None else ()),
    ]


async def _candidates(rt, model, key):
    """The model's plan, then each fallback model's plan; deployments cooling down come last, tried
    only when everything else failed."""
    ready, cooling = rt.router.plan(model, sticky_id=key.id)
    for deployment in ready:
        yield deployment
    for fallback in await _fallback_models(rt, model, key):
        fallback_ready, fallback_cooling = rt.router.plan(fallback, sticky_id=key.id)
        cooling += fallback_cooling
        for deployment in fallback_ready:
            yield deployment
    for deployment in cooling:
        yield deployment


async def _fallback_models(rt, model, key) -> list:
    """The model's fallback models that exist, each once and never the model itself (from the
    in-process snapshot cache: no round trip in steady state)."""
    found, seen = [], {model.name}
    for name in model.policy.fallback_models:
        if name in seen:
            continue
        seen.add(name)
        fallback = await rt.cache.model(key.organization_id, name)
        if fallback is not None:
            found.append(fallback)
    return found


async def _call(rt, x: Exchange, adapter, target):
    upstream_body = dict(x.body)
    upstream_body["model"] = target.upstream_model
    request = adapter.build_request(endpoint=x.endpoint, body=upstream_body, target=target, stream=x.stream)
    request.headers["x-tollgate-request-id"] = x.conn.request_id  # lets a provider's logs be matched to our ledger
    response = await send(rt.session, adapter, request, target, x.endpoint, deadline=x.deadline)
    if response.status >= 400:
        # An upstream may quote the credential back ("Incorrect API key provided: …"): never to the caller.
        raw = redact_secrets(await read_body(response, 1024 * 1024), target_secrets(target))
        raise adapter.map_error(status=response.status, body=raw, headers=response.headers)
    return response


def _retryable(policy, error: UpstreamError) -> bool:
    if isinstance(error, UpstreamRejected):
        return False
    if policy.retry_statuses and error.upstream_status is not None:
        return error.upstream_status in policy.retry_statuses
    return error.retryable


def _unit_cost(deployment, now: float) -> Decimal | None:
    """A comparable price (1k in + 1k out) for the fallback price cap."""
    price = price_at(deployment.prices, now)
    return price.worst_case(prompt_tokens=1000, completion_tokens=1000) if price else None


def _too_dear(policy, primary: Decimal | None, candidate: Decimal | None) -> bool:
    ratio = policy.fallback_max_price_ratio
    if ratio is None or primary is None or candidate is None:
        return False
    return candidate > primary * ratio


async def _whole(x: Exchange, adapter, response, target, headers: list) -> None:
    model, record, endpoint = x.model, x.record, x.endpoint
    try:
        # The same deadline as a stream's once the answer has started: a body can trickle forever too.
        async with asyncio.timeout(model.policy.stream_deadline_seconds):
            raw = await read_body(response)
    except TimeoutError:
        response.close()
        raise UpstreamTimeout(f"The upstream's answer passed its deadline of {model.policy.stream_deadline_seconds} s.") from None
    try:
        answer, usage = adapter.parse_response(endpoint=endpoint, body=raw, target=target, model=model.name)
        if endpoint == "rerank":
            answer = attach_documents(answer, x.body, record.request_id)
        if usage is not None:
            await record.usage(usage, "provider", lambda: _answer_text(raw))
        else:
            parsed = orjson.loads(raw) if isinstance(answer, bytes) else answer
            await record.estimate(completion_text(parsed) or messages.answer_text(parsed) or responses.answer_text(parsed))
    except (MalformedUsage, *PARSE_ERRORS) as exc:
        # A reply that cannot be read is a 502; the answer it carried, if readable, is billed as an estimate.
        error = exc if isinstance(exc, MalformedUsage) else MalformedUsage("The upstream sent an answer that could not be read.")
        await _estimate_answer(record, raw)
        raise error from None
    payload = answer if isinstance(answer, bytes) else orjson.dumps(answer)
    record.status_code = 200
    if record.cache is not None:
        record.cache.payload = payload
    await x.conn.respond(200, payload, [(b"content-type", b"application/json"), *headers, *getattr(adapter, "answer_headers", ())])


async def _estimate_answer(record, raw: bytes) -> None:
    text = _answer_text(raw)
    if text:  # nothing readable was produced: nothing to bill
        await record.estimate(text)


def _answer_text(raw: bytes) -> str:
    """The generated text of an upstream's whole answer, in any wire format ("" if unreadable)."""
    try:
        answer = orjson.loads(raw)
        return completion_text(answer) or "".join(_answer_texts(answer))
    except (*PARSE_ERRORS, RecursionError):
        return ""


def _answer_texts(node, depth: int = 0):
    """The generated text of an answer in any wire format (Anthropic's content blocks, Gemini's parts)."""
    if depth > 16:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("text", "thinking", "arguments") and isinstance(value, str):
                yield value
            else:
                yield from _answer_texts(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            yield from _answer_texts(value, depth + 1)


async def _stream(x: Exchange, adapter, response, target, headers: list) -> None:
    conn, model, record = x.conn, x.model, x.record
    include_usage = bool((x.body.get("stream_options") or {}).get("include_usage"))
    translator = adapter.stream_translator(target=target, model=model.name, request_id=conn.request_id, include_usage=include_usage)
    parser = SSEParser()
    meter = getattr(translator, "meter", OutputMeter)(x.ceiling)
    delivered: list = []  # what reached the client, to estimate usage when the upstream gives none
    await conn.start(200, [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), *headers])
    record.status_code = 200
    try:
        # A total deadline once the stream has started: the idle timeout alone lets a trickle run forever.
        async with asyncio.timeout(model.policy.stream_deadline_seconds):
            async for chunk in iter_body(response):
                # Everything one upstream read completes goes out in one write.
                items, error = _translate(translator, parser.feed(chunk))
                await _write(conn, items, record, delivered, meter)
                if error is not None:
                    raise error
            items, error = _translate(translator, parser.close())
            await _write(conn, items if error else [*items, *translator.finish()], record, delivered, meter)
            if error is not None:
                raise error
        await _settle_stream_usage(record, translator, delivered)
        if record.cache is not None:
            record.cache.chunks = delivered  # complete: the response cache may keep it
        if include_usage and not getattr(translator, "usage_forwarded", False):
            await conn.write(encode_chunk(_usage_chunk(_stream_id(translator, conn), model.name, record)))
        done = getattr(translator, "done", DONE)  # Anthropic's streams have no [DONE]
        if done:
            await conn.write(done)
        await conn.end()
    except (UpstreamError, TimeoutError) as exc:
        # Past the first byte nothing can be retried: tell the client in the stream and close it (which
        # closes the upstream connection too). What was delivered is billed.
        error = exc if isinstance(exc, UpstreamError) else UpstreamTimeout(
            f"The stream passed its deadline of {model.policy.stream_deadline_seconds} s and was stopped.")
        error.message = redact_secrets(error.message, target_secrets(target))
        record.fail(error)
        response.close()
        await _settle_stream_usage(record, translator, delivered, failed=True)
        await conn.write(getattr(translator, "encode_error", encode_error)(error, _stream_id(translator, conn)))
        await conn.end()
    except (ClientGone, asyncio.CancelledError):
        await _settle_stream_usage(record, translator, delivered, lenient=True)
        raise


def _translate(translator, events) -> tuple[list, UpstreamError | None]:
    """The events translated, and the error that stopped them (what came before it is still delivered)."""
    items: list = []
    try:
        for event in events:
            items += translator.feed(event)
    except UpstreamError as error:
        return items, error
    except PARSE_ERRORS:
        return items, MalformedUsage("The upstream sent a stream event that could not be read.")
    return items, None


def _stream_id(translator, conn) -> str:
    return getattr(translator, "stream_id", "") or conn.request_id


async def _settle_stream_usage(record, translator, delivered, failed: bool = False, lenient: bool = False) -> None:
    if failed:
        # A stream that failed is billed for what it delivered, as an estimate; one that failed before any
        # output (an error event inside a 200) is billed nothing.
        text = getattr(translator, "stream_text", stream_text)(delivered)
        if text:
            await _estimate(record, translator, text)
        return
    if translator.usage is not None:
        try:
            return await record.usage(translator.usage, "provider", lambda: getattr(translator, "stream_text", stream_text)(delivered))
        except MalformedUsage:
            if not lenient:
                raise  # the stream ends with an error event, and is billed as an estimate
    await _estimate(record, translator, getattr(translator, "stream_text", stream_text)(delivered))


async def _estimate(record, translator, text: str) -> None:
    """What was delivered, counted; the input as the provider reported it at the stream's start, when it did
    (Anthropic's message_start: exact input, cache reads and writes)."""
    await record.estimate(text)
    known = getattr(translator, "prompt_usage", None)
    if known is not None:
        await record.usage(Usage(known.prompt_tokens, record.completion_tokens, known.cached_tokens, known.cache_write_tokens), "estimated",
                           lambda: text)


async def _write(conn, items: list, record, delivered, meter) -> None:
    if not items:
        return
    items = [item if isinstance(item, bytes) else encode_chunk(item) for item in items]
    allowed = len(items) if meter.fits(items) else await meter.take(items)
    if allowed:
        if record.ttft_ms is None:
            record.ttft_ms = int((time.perf_counter() - record.started) * 1000)
        delivered += items[:allowed] if allowed < len(items) else items
        await conn.write(b"".join(items[:allowed]) if allowed < len(items) else b"".join(items))
    if allowed < len(items):
        raise OutputLimitExceeded(meter.ceiling)  # what passes the ceiling is not forwarded


class DisconnectWatch:
    """Cancels the request's task when the client goes away, even while the upstream is silent,
    which closes the upstream connection and so stops the generation there."""

    def __init__(self, conn):
        self.gone = False
        self._task = asyncio.ensure_future(self._watch(conn, asyncio.current_task()))

    async def _watch(self, conn, request_task) -> None:
        while (await conn.receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        request_task.cancel()

    def stop(self) -> None:
        self._task.cancel()


def _usage_chunk(stream_id: str, model: str, record) -> dict:
    return {
        "id": stream_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model, "choices": [],
        "usage": {
            "prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens,
            "total_tokens": record.prompt_tokens + record.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": record.cached_tokens},
        },
    }
