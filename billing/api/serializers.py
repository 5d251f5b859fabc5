"""Output representations of prices, exchange rates, budgets, usage and alerts, shared by list and detail views.

Money is a decimal string (`"0.000045"`), never a float: exactly what the ledger holds, trailing zeros
dropped. Alert channel secrets never leave through these; the create and rotate responses add the
secret once.
"""

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.api.serializers import TeamRefSerializer, UserRefSerializer
from billing.models import AlertChannel, AlertDelivery, Budget, UsageSource
from billing.selectors import shown_destination


@extend_schema_field({"type": "string", "format": "decimal", "example": "0.15"})
class MoneyField(serializers.Field):
    """A Decimal as a plain decimal string without trailing zeros (no exponent, no float rounding)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return money_text(value)


def money_text(value) -> str | None:
    if value is None:
        return None
    text = format(Decimal(value).normalize(), "f")
    return "0" if text in ("-0", "0") else text


class DecimalStringField(serializers.DecimalField):
    """Input: a decimal (string or number) within 20 digits, 10 after the point. Output: as MoneyField."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 20)
        kwargs.setdefault("decimal_places", 10)
        kwargs.setdefault("min_value", Decimal(0))
        super().__init__(coerce_to_string=True, **kwargs)

    def to_representation(self, value):
        return money_text(value)


class PriceTierSerializer(serializers.Serializer):
    above_prompt_tokens = serializers.IntegerField(min_value=0, help_text="Applies to requests whose prompt is larger than this.")
    input = DecimalStringField(help_text="Per 1M input tokens.")
    cached_input = DecimalStringField(required=False, allow_null=True, help_text="Per 1M cached input tokens; null: the input price.")
    cache_write = DecimalStringField(required=False, allow_null=True, help_text="Per 1M tokens written to the cache; null: the input price.")
    output = DecimalStringField(help_text="Per 1M output tokens.")

    class Meta:
        ref_name = "PriceTier"


class PriceWindowSerializer(serializers.Serializer):
    days = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=6), min_length=1, help_text="0 = Monday … 6 = Sunday.")
    start = serializers.RegexField(r"^([01]\d|2[0-4]):[0-5]\d$", help_text="HH:MM in the price's time zone.")
    end = serializers.RegexField(r"^([01]\d|2[0-4]):[0-5]\d$", help_text="HH:MM, exclusive.")
    multiplier = DecimalStringField(help_text="Applied to the whole request's cost, e.g. 2 for double.")

    class Meta:
        ref_name = "PriceWindow"


class PriceSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    scope = serializers.SerializerMethodField(help_text="org: the organization's own entry; global: the seeded book.")
    provider = serializers.CharField(read_only=True)
    upstream_model = serializers.CharField(read_only=True)
    currency = serializers.CharField(read_only=True)
    input_per_m = MoneyField(help_text="Per 1M input tokens, in `currency`.")
    cached_input_per_m = MoneyField(allow_null=True, help_text="Per 1M cached input tokens; null: the input price.")
    cache_write_per_m = MoneyField(allow_null=True, help_text="Per 1M prompt tokens written to the provider's cache (Anthropic); null: the input price.")
    output_per_m = MoneyField(help_text="Per 1M output tokens.")
    per_search_unit = MoneyField(allow_null=True, help_text="Per rerank search unit (Cohere: a query with up to 100 documents); null: none.")
    tiers = PriceTierSerializer(many=True, read_only=True)
    windows = PriceWindowSerializer(many=True, read_only=True)
    time_zone = serializers.CharField(read_only=True, help_text="The time zone of the windows.")
    effective_from = serializers.DateTimeField(read_only=True)
    in_force = serializers.BooleanField(read_only=True, help_text="Whether this entry prices requests made now.")
    source = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "Price"

    def get_scope(self, price) -> str:
        return "global" if price.organization_id is None else "org"


class ExchangeRateSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    currency = serializers.CharField(read_only=True)
    rate = MoneyField(help_text="One unit of `currency` in the organization's currency.")
    to_currency = serializers.CharField(read_only=True, source="organization.currency")
    effective_from = serializers.DateTimeField(read_only=True)
    in_force = serializers.BooleanField(read_only=True, help_text="Whether this is the rate used now.")

    class Meta:
        ref_name = "ExchangeRate"


class KeyRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    prefix = serializers.CharField(read_only=True)

    class Meta:
        ref_name = "VirtualKeyRef"


class BudgetSerializer(serializers.Serializer):
    """A budget with its spend in the current period (set on the instance by the view)."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    scope = serializers.ChoiceField(choices=Budget.Scope.choices, read_only=True)
    team = TeamRefSerializer(read_only=True, allow_null=True)
    key = KeyRefSerializer(read_only=True, allow_null=True)
    user = UserRefSerializer(read_only=True, allow_null=True)
    period = serializers.ChoiceField(choices=Budget.Period.choices, read_only=True)
    amount = MoneyField(help_text="In the organization's currency.")
    currency = serializers.CharField(read_only=True, source="organization.currency")
    hard = serializers.BooleanField(read_only=True, help_text="true: requests that would exceed it are refused (429).")
    thresholds = serializers.ListField(child=serializers.IntegerField(), read_only=True, help_text="Alert at these percentages.")
    downgrade_model = serializers.CharField(read_only=True)
    spent = MoneyField(help_text="Spend in the current period, in the organization's currency.")
    reserved = MoneyField(
        allow_null=True,
        help_text="Held beyond `spent` by requests in flight and the relay's leases (settles to the real cost); "
                  "null without Redis (each process counts its own).",
    )
    percent = MoneyField(help_text="spent / amount × 100, to two decimals.")
    period_start = serializers.DateTimeField(read_only=True)
    period_end = serializers.DateTimeField(read_only=True, allow_null=True, help_text="Null for the `total` period.")
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "Budget"


class UsageEventSerializer(serializers.Serializer):
    """One request of the log: who, which model, how many tokens, what it cost. Never its content."""

    id = serializers.IntegerField(read_only=True)
    request_id = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    team_id = serializers.IntegerField(read_only=True, allow_null=True)
    key_id = serializers.IntegerField(read_only=True, allow_null=True)
    user_id = serializers.IntegerField(read_only=True, allow_null=True)
    model_name = serializers.CharField(read_only=True)
    deployment_id = serializers.IntegerField(read_only=True, allow_null=True)
    provider = serializers.CharField(read_only=True)
    upstream_model = serializers.CharField(read_only=True)
    endpoint = serializers.CharField(read_only=True)
    stream = serializers.BooleanField(read_only=True)
    status_code = serializers.IntegerField(read_only=True)
    error_type = serializers.CharField(read_only=True)
    prompt_tokens = serializers.IntegerField(read_only=True)
    cached_tokens = serializers.IntegerField(read_only=True)
    completion_tokens = serializers.IntegerField(read_only=True)
    usage_source = serializers.ChoiceField(choices=UsageSource.choices, read_only=True)
    attempts = serializers.IntegerField(read_only=True)
    latency_ms = serializers.IntegerField(read_only=True)
    ttft_ms = serializers.IntegerField(read_only=True, allow_null=True)
    cost = MoneyField(allow_null=True, help_text="In the price's `currency`; null: unpriced.")
    currency = serializers.CharField(read_only=True)
    exchange_rate = MoneyField(allow_null=True, help_text="The rate it was converted at.")
    cost_display = MoneyField(allow_null=True, help_text="In the organization's currency; null: unpriced or no rate.")
    price_id = serializers.IntegerField(read_only=True, allow_null=True)
    downgraded_from = serializers.CharField(read_only=True)
    cache_hit = serializers.BooleanField(read_only=True, help_text="Answered from the response cache: cost 0.")
    sandbox = serializers.BooleanField(read_only=True, help_text="Answered by the demo model for a sandbox key: cost 0.")
    would_have_cost = MoneyField(allow_null=True, help_text="For a cache hit or a sandbox run: what it would have cost, in the organization's currency.")

    class Meta:
        ref_name = "UsageEvent"


class AlertChannelSerializer(serializers.Serializer):
    """A channel without its secrets: only whether it has a signing secret, and a URL's hint.

    Webhook and Feishu, DingTalk and WeCom bot URLs carry a token, so a URL is write-only: it is stored
    encrypted and read back as scheme, host and its last 4 characters (`https://host/…abcd`).
    """

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    kind = serializers.ChoiceField(choices=AlertChannel.Kind.choices, read_only=True)
    target = serializers.SerializerMethodField(
        help_text="Email addresses (comma-separated). For URL kinds the URL is write-only: shown as scheme, host and its last 4 characters. Empty without manage_budgets."
    )
    has_secret = serializers.SerializerMethodField()
    enabled = serializers.BooleanField(read_only=True)
    disabled_reason = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "AlertChannel"

    def get_target(self, channel) -> str:
        # `shown_target`/`shown_hint` come from billing.selectors.alert_channels_visible_to: empty without manage_budgets.
        return shown_destination(channel)

    def get_has_secret(self, channel) -> bool:
        return bool(channel.secret_encrypted)


class AlertChannelWithSecretSerializer(AlertChannelSerializer):
    """The create and rotate responses: the only time the secret is shown."""

    secret = serializers.SerializerMethodField(help_text="The signing secret, shown this once (null when the kind has none).")

    class Meta:
        ref_name = "AlertChannelWithSecret"

    def get_secret(self, obj) -> str | None:
        return self.context.get("secret")


class AlertRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    kind = serializers.CharField(read_only=True)
    budget_id = serializers.IntegerField(read_only=True, allow_null=True)
    payload = serializers.JSONField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "AlertRef"


class AlertChannelRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    kind = serializers.ChoiceField(choices=AlertChannel.Kind.choices, read_only=True)

    class Meta:
        ref_name = "AlertChannelRef"


class AlertDeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    alert = AlertRefSerializer(read_only=True)
    channel = AlertChannelRefSerializer(read_only=True)
    message_id = serializers.CharField(read_only=True, help_text="The webhook-id header: the same on every retry.")
    status = serializers.ChoiceField(choices=AlertDelivery.Status.choices, read_only=True)
    attempts = serializers.IntegerField(read_only=True)
    last_status_code = serializers.IntegerField(read_only=True, allow_null=True)
    last_error = serializers.CharField(read_only=True)
    next_attempt_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    sent_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        ref_name = "AlertDelivery"
