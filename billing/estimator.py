"""The cost estimator: how many tokens a job will use and what it would cost on several models, side by side.

Tokens are counted offline with the relay's tokenizer (o200k_base: exact for current OpenAI models, an
approximation for other vendors'). Prices come from the same snapshots and `price_at` the relay charges
with, converted at the organization's current exchange rates, so an estimate and a bill agree.
"""

import math
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from accounts.models import Organization
from billing.selectors import exchange_rates_for, prices_for
from keys.models import Deployment, Model
from wire import tokens
from wire.pricing import price_at, utc

# OpenAI's rule of thumb for English text; Chinese and Japanese run nearer one token per character.
CHARS_PER_TOKEN = 4
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES + 256 * 1024  # the whole request: the file or text and the form around it
MAX_MODELS = 20
MAX_DOCUMENTS = 10_000_000
MAX_TOKENS_PER_REQUEST = 10_000_000


@dataclass(frozen=True)
class DeploymentEstimate:
    deployment_id: int
    name: str
    provider: str
    upstream_model: str
    weight: int
    order: int
    price_id: int | None
    currency: str  # the price's currency; empty when unpriced
    window_multiplier: Decimal | None  # the time-of-day multiplier in force at the estimate's instant
    cost: Decimal | None  # in `currency`
    exchange_rate: Decimal | None  # one unit of `currency` in the organization's currency
    cost_display: Decimal | None  # in the organization's currency
    missing: str  # "", "price" or "exchange_rate"

    @property
    def unpriced(self) -> bool:
        return self.cost is None


@dataclass(frozen=True)
class ModelEstimate:
    model: str
    input_tokens: int  # in total, over every request
    output_tokens: int
    deployments: tuple[DeploymentEstimate, ...]
    # Where traffic goes first: the lowest-order deployment with a weight, else the first fallback.
    main: DeploymentEstimate | None

    @property
    def unpriced(self) -> bool:
        return self.main is None or self.main.unpriced

    @property
    def missing(self) -> str:
        return "deployment" if self.main is None else self.main.missing


@dataclass(frozen=True)
class Estimate:
    at: datetime
    currency: str  # the organization's display currency
    input_source: str  # "text", "document_tokens" or "document_characters"
    requests: int
    input_tokens_per_request: int
    output_tokens_per_request: int
    models: tuple[ModelEstimate, ...]

    @property
    def input_tokens(self) -> int:
        return self.requests * self.input_tokens_per_request

    @property
    def output_tokens(self) -> int:
        return self.requests * self.output_tokens_per_request


def upload_text(*, upload, limit: int = MAX_UPLOAD_BYTES) -> str:
    """An uploaded file's text: UTF-8, undecodable bytes replaced, refused past `limit` bytes."""
    if upload.size is not None and upload.size > limit:
        raise ApplicationError(_("The file is larger than %(mb)d MB.") % {"mb": limit // (1024 * 1024)}, field="file", code="too_large")
    data = upload.read(limit + 1)
    if len(data) > limit:  # the declared size can be wrong
        raise ApplicationError(_("The file is larger than %(mb)d MB.") % {"mb": limit // (1024 * 1024)}, field="file", code="too_large")
    return data.decode("utf-8", errors="replace")


def _whole(value, field: str, *, maximum: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ApplicationError(_("Enter a whole number between %(min)d and %(max)d.") % {"min": minimum, "max": maximum}, field=field)
    return value


def _input_tokens(text, documents, average_document_tokens, average_document_characters) -> tuple[str, int, int]:
    """(source, requests, input tokens per request): a text is one request, each document one request."""
    if text is not None and documents is not None:
        raise ApplicationError(_("Give either a text (or file) or a number of documents, not both."), field="documents")
    if text is not None:
        return "text", 1, tokens.count_text(text)
    if documents is None:
        raise ApplicationError(_("Give a text, a file, or a number of documents and their average size."), field="text")
    documents = _whole(documents, "documents", maximum=MAX_DOCUMENTS)
    if (average_document_tokens is None) == (average_document_characters is None):
        raise ApplicationError(
            _("Give the documents' average size in tokens or in characters (one of them)."), field="average_document_tokens"
        )
    if average_document_tokens is not None:
        per_document = _whole(average_document_tokens, "average_document_tokens", maximum=MAX_TOKENS_PER_REQUEST)
        return "document_tokens", documents, per_document
    characters = _whole(average_document_characters, "average_document_characters", maximum=MAX_TOKENS_PER_REQUEST * CHARS_PER_TOKEN)
    return "document_characters", documents, math.ceil(characters / CHARS_PER_TOKEN)


def _models(organization: Organization, names: list[str]) -> list[Model]:
    if not isinstance(names, list) or not names:
        raise ApplicationError(_("Choose at least one model."), field="models")
    wanted = list(dict.fromkeys(str(name).strip() for name in names))
    if len(wanted) > MAX_MODELS:
        raise ApplicationError(_("Compare at most %(max)d models at once.") % {"max": MAX_MODELS}, field="models")
    found = {m.name: m for m in Model.objects.filter(organization=organization, name__in=wanted, is_active=True)}
    unknown = [name for name in wanted if name not in found]
    if unknown:
        raise ApplicationError(_("Unknown model: %(names)s.") % {"names": ", ".join(unknown)}, field="models", code="not_found")
    return [found[name] for name in wanted]


def _deployment_estimate(deployment: Deployment, *, organization: Organization, rates: dict, epoch: float,
                         requests: int, input_tokens: int, output_tokens: int) -> DeploymentEstimate:
    provider = deployment.credential.provider
    snapshot = price_at(prices_for(organization_id=organization.pk, provider=provider, upstream_model=deployment.upstream_model), epoch)
    fields = dict(
        deployment_id=deployment.pk, name=str(deployment), provider=provider, upstream_model=deployment.upstream_model,
        weight=deployment.weight, order=deployment.order,
    )
    if snapshot is None:
        return DeploymentEstimate(**fields, price_id=None, currency="", window_multiplier=None, cost=None,
                                  exchange_rate=None, cost_display=None, missing="price")
    # Tiers depend on one request's prompt size, so price one request and multiply.
    per_request = snapshot.cost(prompt_tokens=input_tokens, cached_tokens=0, completion_tokens=output_tokens, at=epoch)
    cost = per_request * requests
    rate = Decimal(1) if snapshot.currency == organization.currency else rates.get(snapshot.currency)
    return DeploymentEstimate(
        **fields, price_id=snapshot.id, currency=snapshot.currency, window_multiplier=snapshot.multiplier_at(epoch), cost=cost,
        exchange_rate=rate, cost_display=None if rate is None else cost * rate, missing="" if rate is not None else "exchange_rate",
    )


def estimate_cost(
    *, organization: Organization, text: str | None = None, documents: int | None = None,
    average_document_tokens: int | None = None, average_document_characters: int | None = None,
    expected_output_tokens: int, models: list[str], at: datetime | None = None,
) -> Estimate:
    """Estimate a job on each named model (the organization's public model names), side by side.

    The input is a text (one request), or `documents` requests of an average size in tokens or characters
    (characters / CHARS_PER_TOKEN, rounded up). `expected_output_tokens` is per request. The cost is at the
    prices in force at `at` (default now), time-of-day windows included, without cache discounts.
    """
    source, requests, input_per_request = _input_tokens(text, documents, average_document_tokens, average_document_characters)
    _whole(expected_output_tokens, "expected_output_tokens", minimum=0, maximum=MAX_TOKENS_PER_REQUEST)
    chosen = _models(organization, models)
    epoch = at.timestamp() if at is not None else time.time()
    rates: dict[str, Decimal] = {}
    rate_at = max(epoch, time.time())  # today's rates for a past moment; a scheduled one for a later moment
    for currency, rate, effective_from in exchange_rates_for(organization_id=organization.pk):  # newest first
        if effective_from <= rate_at:
            rates.setdefault(currency, rate)
    deployments = Deployment.objects.filter(model__in=chosen, is_active=True).select_related("credential").order_by("order", "id")
    by_model: dict[int, list[Deployment]] = {}
    for deployment in deployments:
        by_model.setdefault(deployment.model_id, []).append(deployment)
    results = []
    for model in chosen:
        rows = tuple(
            _deployment_estimate(d, organization=organization, rates=rates, epoch=epoch, requests=requests,
                                 input_tokens=input_per_request, output_tokens=expected_output_tokens)
            for d in by_model.get(model.pk, [])
        )
        main = next((row for row in rows if row.weight > 0), rows[0] if rows else None)
        results.append(ModelEstimate(
            model=model.name, input_tokens=requests * input_per_request, output_tokens=requests * expected_output_tokens,
            deployments=rows, main=main,
        ))
    return Estimate(
        at=utc(epoch), currency=organization.currency, input_source=source, requests=requests,
        input_tokens_per_request=input_per_request, output_tokens_per_request=expected_output_tokens, models=tuple(results),
    )
