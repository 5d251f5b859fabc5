"""The usage of one request as the relay gathers it, priced exactly; it leaves as a wire.usage.UsageRecord."""

import asyncio
import time
from decimal import Decimal

import orjson

from wire import tokens
from wire.adapters.rerank import document_texts, search_units
from wire.errors import BudgetUnenforceable, RelayError
from wire.pricing import price_at, to_micros
from wire.usage import MAX_USAGE_TOKENS, UsageRecord, usage_number

INLINE_COUNT_CHARS = 8192
MODEL_NAME_LENGTH = 120  # the ledger's model_name column
def worst_case_micros(models, prompt_tokens: int, output_tokens: int, now: float, *, hard_budget=None, search_units: int = 0) -> int:
    """The dearest deployment's price for this request size, in the org currency, over every model that
    may serve it (the model asked for and its fallback models).

    A deployment whose cost cannot be known (no price, or no exchange rate from the price's currency)
    counts as 0, unless `hard_budget` (the first hard budget holding the request) is given: then the
    request is refused, since an unknown cost would pass any hard budget. A price of zero (an explicit
    price-book row) marks a model free and needs no exchange rate.
    """
    worst = Decimal(0)
    for model in models:
        for deployment in model.deployments:
            price = price_at(deployment.prices, now)
            if price is None:
                if hard_budget is not None:
                    raise _unenforceable(model, deployment, hard_budget, None)
                continue
            cost = price.worst_case(prompt_tokens=prompt_tokens, completion_tokens=output_tokens, search_units=search_units)
            if not cost:
                continue  # free
            rate = model.exchange_rate(price.currency, now)
            if rate is None:
                if hard_budget is not None:
                    raise _unenforceable(model, deployment, hard_budget, price.currency)
                continue
            worst = max(worst, cost * rate)
    return to_micros(worst)


def _unenforceable(model, deployment, budget, currency: str | None) -> BudgetUnenforceable:
    target = deployment.target
    where = f"The model '{model.name}' (deployment {target.deployment_id}, provider {target.provider})"
    budget_text = "the credit balance" if hasattr(budget, "funded_micros") else f"the hard {budget.scope} budget '{budget.label}'"
    if currency is None:
        return BudgetUnenforceable(
            f"{where} has no price, so its cost cannot be held against {budget_text}. An admin adds the price "
            "to the price book (a price of 0 marks the model free).",
            param="model",
        )
    return BudgetUnenforceable(
        f"{where} is priced in {currency} and the organization has no exchange rate from {currency} to "
        f"{model.currency}, so its cost cannot be held against {budget_text}. An admin adds the exchange rate.",
        param="model", code="exchange_rate_missing",
    )


def completion_text(answer) -> str:
    parts = []
    for choice in (answer or {}).get("choices") or []:
        message = choice.get("message") or {}
        parts.append(str(message.get("content") or choice.get("text") or ""))
        for call in message.get("tool_calls") or []:
            parts.append(str((call.get("function") or {}).get("arguments", "")))
    return "".join(parts)


def stream_text(delivered: list) -> str:
    parts = []
    for item in delivered:
        chunk = item
        if isinstance(item, bytes):
            try:
                chunk = orjson.loads(item[6:]) if item.startswith(b"data: ") else {}
            except orjson.JSONDecodeError:
                continue
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            parts.append(str(delta.get("content") or choice.get("text") or ""))
            for call in delta.get("tool_calls") or []:
                parts.append(str((call.get("function") or {}).get("arguments", "")))
    return "".join(parts)


class Record:
    """What one request used; emitted through the usage sink as a UsageRecord."""

    __slots__ = (
        "request_id", "key", "model", "model_name", "endpoint", "stream", "started", "created_at", "status_code",
        "error_type", "prompt_tokens", "cached_tokens", "cache_write_tokens", "completion_tokens", "usage_source", "attempts", "deployment",
        "deployment_id", "provider", "upstream_model", "ttft_ms", "latency_ms", "body", "cost", "currency",
        "exchange_rate", "cost_display", "price_id", "attempt_trail", "downgraded_from", "usage_flags", "batch_id",
        "cache", "cache_hit", "sandbox", "would_have_cost", "downgraded_model", "search_units",
    )

    def __init__(self, request_id, key, model, endpoint, stream, body):
        self.request_id, self.key, self.endpoint, self.stream = request_id, key, endpoint, stream
        # Without a model (refused before admission): the name asked for, as far as it is a name.
        self.model, self.model_name = model, model.name if model is not None else requested_model(body)
        self.deployment = None
        self.attempt_trail: list[dict] = []
        self.downgraded_from = ""
        self.cost = self.currency = self.exchange_rate = self.cost_display = self.price_id = None
        self.started = time.perf_counter()
        self.created_at = time.time()
        self.status_code, self.error_type = 0, ""
        self.prompt_tokens = self.cached_tokens = self.cache_write_tokens = self.completion_tokens = self.search_units = 0
        self.usage_source = "missing"
        self.usage_flags = ""  # what Record.usage corrected in the upstream's figures, e.g. "negative:prompt"
        self.attempts, self.deployment_id, self.provider, self.upstream_model = 0, None, "", ""
        self.ttft_ms = None
        self.latency_ms = 0
        self.body = body  # the request, to count its tokens if the upstream reports none
        self.batch_id = ""  # set for a batch line (relay.pipeline.InProcessCaller)
        self.cache = None  # relay.response_cache.Lookup, for a request that opted in to the response cache
        self.cache_hit = False
        self.sandbox = getattr(key, "sandbox", False)  # README "Sandbox keys": priced as the model named, charged nothing
        self.would_have_cost = None
        self.downgraded_model = None  # the model a budget downgraded this request from

    def attempt(self, number: int, deployment) -> None:
        target = deployment.target
        self.attempts, self.deployment, self.deployment_id = number, deployment, target.deployment_id
        self.provider, self.upstream_model = target.provider, target.upstream_model

    def trail(self, deployment, status: int, error: str, started: float) -> None:
        # "at": when the attempt began, in ms from the request's arrival (the traces place it with it).
        self.attempt_trail.append({
            "deployment": deployment.target.deployment_id, "status": status, "error": error,
            "ms": int((time.perf_counter() - started) * 1000), "at": int((started - self.started) * 1000),
        })

    async def usage(self, usage, source: str, answer_text=str) -> None:
        """Take an upstream's figures, the one place they enter the record: a non-number raises
        MalformedUsage; a negative count becomes 0, one above MAX_USAGE_TOKENS is capped, cached tokens
        never exceed the prompt; each correction is flagged (kept in the ledger's usage_flags). Figures
        that needed a correction are not trusted at all: the request is billed from the offline
        estimate of the request and of `answer_text()` (what was delivered), so a broken upstream never
        yields a free (or absurd) request."""
        if self.sandbox:  # the demo model's own figures are not the named model's: count with the tokenizer
            await self.estimate(answer_text())
            return
        flags = []
        prompt = _in_range(usage_number(usage.prompt_tokens), "prompt", flags)
        completion = _in_range(usage_number(usage.completion_tokens), "completion", flags)
        cached = _in_range(usage_number(usage.cached_tokens), "cached", flags)
        cache_write = _in_range(usage_number(usage.cache_write_tokens), "cache_write", flags)
        units = _in_range(usage_number(usage.search_units), "search_units", flags)
        if cached > prompt:
            cached = prompt
            flags.append("cached>prompt")
        self.usage_flags = ",".join(flags)
        if flags:
            self.cached_tokens = self.cache_write_tokens = 0
            await self.estimate(answer_text())
            return
        self.prompt_tokens, self.completion_tokens, self.cached_tokens = prompt, completion, cached
        self.cache_write_tokens = cache_write
        self.search_units = units  # only what the provider reports: one that bills per token reports none
        self.usage_source = source

    async def estimate(self, completion_text: str) -> None:
        """Count tokens offline; long texts are counted in a worker thread, off the event loop."""
        if tokens.loaded() and len(completion_text) < INLINE_COUNT_CHARS:
            self._count(completion_text)
        else:
            await asyncio.get_running_loop().run_in_executor(None, self._count, completion_text)

    def _count(self, completion_text: str) -> None:
        self.prompt_tokens = tokens.estimate_prompt(self.endpoint, self.body)
        self.completion_tokens = tokens.count_text(completion_text)
        if self.endpoint == "rerank":
            self.search_units = rerank_units(self.body)
        self.usage_source = "estimated"

    def fail(self, error: RelayError) -> None:
        self.status_code, self.error_type = error.status, error.code

    def finish(self) -> None:
        self.latency_ms = int((time.perf_counter() - self.started) * 1000)
        if not self.status_code:
            self.status_code = 500
        self._price()

    def _price(self) -> None:
        if self.cache_hit:  # answered from the response cache: free, `would_have_cost` is the original's
            self.cost = self.cost_display = Decimal(0)
            self.currency = self.model.currency
            return
        self._price_usage()
        if self.sandbox and self.deployment is not None:  # what the named model would have cost; charged nothing
            self.would_have_cost, self.cost, self.cost_display = self.cost_display, Decimal(0), Decimal(0)
        elif self.downgraded_model is not None and self.cost_display is not None:
            self.would_have_cost = self._cost_as(self.downgraded_model)

    def _cost_as(self, model) -> Decimal | None:
        """The same usage at `model`'s first priced deployment, in the display currency (None: unknown)."""
        for deployment in model.deployments:
            price = price_at(deployment.prices, self.created_at)
            if price is not None:
                rate = model.exchange_rate(price.currency, self.created_at)
                cost = price.cost(prompt_tokens=self.prompt_tokens, cached_tokens=self.cached_tokens, completion_tokens=self.completion_tokens,
                                  at=self.created_at, cache_write_tokens=self.cache_write_tokens)
                return cost * rate if rate is not None else None
        return None

    def _price_usage(self) -> None:
        """Exact cost of what was used, at the price in force when the request started."""
        if self.deployment is None or not (self.prompt_tokens or self.completion_tokens or self.search_units):
            if self.endpoint == "count_tokens" and self.deployment is not None and self.status_code == 200:
                self.cost = self.cost_display = Decimal(0)  # counting is free: a zero row, not an unpriced one
            return
        price = price_at(self.deployment.prices, self.created_at)
        if price is None:
            return  # unpriced: recorded and alerted as such, never as zero
        self.cost = price.cost(
            prompt_tokens=self.prompt_tokens, cached_tokens=self.cached_tokens, completion_tokens=self.completion_tokens,
            at=self.created_at, cache_write_tokens=self.cache_write_tokens, search_units=self.search_units,
        )
        self.currency, self.price_id = price.currency, price.id
        self.exchange_rate = self.model.exchange_rate(price.currency, self.created_at)
        if self.exchange_rate is not None:
            self.cost_display = self.cost * self.exchange_rate
        elif not self.cost:
            self.cost_display = self.cost  # free (a zero price): zero in any currency

    def as_usage(self) -> UsageRecord:
        key = self.key
        return UsageRecord(
            request_id=self.request_id, organization_id=key.organization_id, team_id=key.team_id, key_id=key.id,
            user_id=key.user_id, model_name=self.model_name, deployment_id=self.deployment_id, provider=self.provider,
            upstream_model=self.upstream_model, endpoint=self.endpoint, stream=self.stream,
            status_code=self.status_code, error_type=self.error_type, prompt_tokens=self.prompt_tokens,
            cached_tokens=self.cached_tokens, cache_write_tokens=self.cache_write_tokens,
            completion_tokens=self.completion_tokens, usage_source=self.usage_source, attempts=self.attempts,
            latency_ms=self.latency_ms, ttft_ms=self.ttft_ms, created_at=self.created_at, cost=_text(self.cost),
            currency=self.currency or "", exchange_rate=_text(self.exchange_rate),
            cost_display=_text(self.cost_display), price_id=self.price_id, attempt_trail=self.attempt_trail,
            downgraded_from=self.downgraded_from, usage_flags=self.usage_flags,
            credit_account_id=key.credit.id if key.credit is not None and self.cost_display else None,
            batch_id=self.batch_id, cache_hit=self.cache_hit,
            sandbox=self.sandbox, would_have_cost=_text(self.would_have_cost), search_units=self.search_units,
        )


def rerank_units(body, count=tokens.count_text) -> int:
    """The search units of a checked rerank request (Cohere's rule, wire.adapters.rerank.search_units)."""
    texts = document_texts(body["documents"])
    return search_units(count(body["query"]), [count(text) for text in texts])


def _in_range(count: int, name: str, flags: list) -> int:
    if count < 0:
        flags.append(f"negative:{name}")
        return 0
    if count > MAX_USAGE_TOKENS:
        flags.append(f"capped:{name}")
        return MAX_USAGE_TOKENS
    return count


def requested_model(body) -> str:
    """The model a refused body asked for, fit for the ledger: a refused body may hold anything there."""
    name = body.get("model") if isinstance(body, dict) else None
    return "".join(c for c in name[:MODEL_NAME_LENGTH] if c.isprintable()) if isinstance(name, str) else ""


def _text(amount: Decimal | None) -> str | None:
    """Decimals travel as strings: exact through JSON and the stream."""
    return None if amount is None else str(amount)
