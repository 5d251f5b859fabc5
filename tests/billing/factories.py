"""Billing rows built directly (no service, no audit entry): prices, rates, ledger events, budgets, alerts.

`usage_record(...)` builds the dict the relay emits, for `billing.ledger.usage_ingest`, which inserts the
event and adds it to the rollups exactly as the drain does.
"""

import itertools
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import factory
from django.utils import timezone

from billing import webhooks
from billing.models import Alert, AlertChannel, AlertDelivery, Budget, ExchangeRate, Price, UsageEvent
from keys.encryption import encrypt
from tests.accounts.factories import OrganizationFactory

_request_ids = itertools.count(1)


class PriceFactory(factory.django.DjangoModelFactory):
    """An organization's own price entry; pass organization=None for a global one."""

    class Meta:
        model = Price

    organization = factory.SubFactory(OrganizationFactory)
    provider = "openai"
    upstream_model = factory.Sequence(lambda n: f"test-model-{n}")
    currency = "USD"
    input_per_m = Decimal("1.00")
    cached_input_per_m = None
    output_per_m = Decimal("2.00")
    effective_from = datetime(2025, 1, 1, tzinfo=dt_timezone.utc)
    source = "test"


class ExchangeRateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExchangeRate

    organization = factory.SubFactory(OrganizationFactory)
    currency = "CNY"
    rate = Decimal("0.14")
    effective_from = factory.LazyFunction(timezone.now)


class UsageEventFactory(factory.django.DjangoModelFactory):
    """A ledger row without rollups; use `usage_record` + `usage_ingest` when summaries must see it."""

    class Meta:
        model = UsageEvent

    request_id = factory.Sequence(lambda n: f"req-factory-{n}")
    organization = factory.SubFactory(OrganizationFactory)
    model_name = "gpt-test"
    endpoint = "chat"
    status_code = 200
    created_at = factory.LazyFunction(timezone.now)


class BudgetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Budget

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Budget {n}")
    scope = Budget.Scope.ORGANIZATION
    period = Budget.Period.MONTH
    amount = Decimal("100")
    thresholds = [50, 80, 100]


class AlertChannelFactory(factory.django.DjangoModelFactory):
    """An email channel; `AlertChannelFactory(webhook=True)` is a signed webhook with a secret."""

    class Meta:
        model = AlertChannel

    class Params:
        webhook = factory.Trait(
            kind=AlertChannel.Kind.WEBHOOK,
            target="https://hooks.example.com/tollgate",
            secret_encrypted=factory.LazyFunction(lambda: encrypt(webhooks.new_secret())),
        )

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Channel {n}")
    kind = AlertChannel.Kind.EMAIL
    target = "ops@example.com"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # A URL kind's `target` is stored the way billing.alerts stores it: encrypted, with a hint.
        channel = model_class(*args, **kwargs)
        if channel.has_url:
            channel.set_url(channel.target)
            channel.target = ""
        channel.save()
        return channel


class AlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alert

    organization = factory.SubFactory(OrganizationFactory)
    kind = "test"
    dedupe_key = factory.Sequence(lambda n: f"factory:{n}")
    payload = factory.LazyFunction(dict)


class AlertDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AlertDelivery

    organization = factory.SubFactory(OrganizationFactory)
    alert = factory.SubFactory(AlertFactory, organization=factory.SelfAttribute("..organization"))
    channel = factory.SubFactory(AlertChannelFactory, organization=factory.SelfAttribute("..organization"))
    message_id = factory.Sequence(lambda n: f"msg_factory_{n}")


def usage_record(*, organization, at: datetime, model_name: str = "gpt-test", key=None, team_id=None, user_id=None,
                 deployment_id=None, status_code: int = 200, prompt_tokens: int = 100, cached_tokens: int = 0,
                 completion_tokens: int = 50, cost_display: str | None = "0.01", **extra) -> dict:
    """A usage record as the relay emits it (key, if given, supplies team and user as the relay would)."""
    return {
        "request_id": f"req-{next(_request_ids)}", "organization_id": organization.pk,
        "team_id": key.team_id if key is not None else team_id, "key_id": key.pk if key is not None else None,
        "user_id": key.user_id if key is not None else user_id, "model_name": model_name, "deployment_id": deployment_id,
        "provider": "openai", "upstream_model": "gpt-4o-mini", "endpoint": "chat", "stream": False,
        "status_code": status_code, "error_type": "" if status_code < 400 else "upstream_error",
        "prompt_tokens": prompt_tokens, "cached_tokens": cached_tokens, "completion_tokens": completion_tokens,
        "usage_source": "provider", "attempts": 1, "latency_ms": 120, "ttft_ms": None, "created_at": at.timestamp(),
        "cost": cost_display, "currency": "USD" if cost_display is not None else "",
        "exchange_rate": "1" if cost_display is not None else None, "cost_display": cost_display, "price_id": None,
        **extra,
    }
