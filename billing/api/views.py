"""REST endpoints for prices, exchange rates, budgets, usage, the cost estimator and alert channels.

Each view reads through `billing.selectors` (or the small read helpers below), writes through one
`billing.services` / `billing.alerts` function and finds objects only inside the caller's organization
(`get_scoped`), so another organization's object is a 404. Ids in a request body or a filter (a team, a
key, a user) are looked up the same way and refused as field errors.
"""

import zoneinfo
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from accounts.api.base import OrgAPIView
from accounts.api.pagination import Pagination
from accounts.api.parsers import BoundedJSONParser
from accounts.api.views import paginated_response
from accounts.errors import ApplicationError
from accounts.models import TIME_ZONE_CHOICES, Team, User
from accounts.permissions import Perm
from accounts.tenancy import OrgContext
from billing import alerts, dashboard, estimator, selectors, services
from billing.api.serializers import (
    AlertChannelSerializer,
    AlertChannelWithSecretSerializer,
    AlertDeliverySerializer,
    BudgetSerializer,
    DecimalStringField,
    ExchangeRateSerializer,
    MoneyField,
    PriceSerializer,
    PriceTierSerializer,
    PriceWindowSerializer,
    UsageEventSerializer,
)
from billing.dashboard import ENDPOINT_LABELS, endpoint_label
from billing.models import AlertChannel, AlertDelivery, Budget, Price, UsageDeadLetter
from keys.models import Deployment, VirtualKey
from wire.presets import PRESETS

# A price may start a little in the past (clock skew, a form filled in slowly), never earlier.
PRICE_BACKDATE_SLACK = timedelta(minutes=5)
DEFAULT_USAGE_DAYS = 30


def _team(view: OrgAPIView, team_id: int | None, field: str = "team") -> Team | None:
    if team_id is None:
        return None
    team = view.scoped(Team).filter(pk=team_id).first()
    if team is None:
        raise ApplicationError("Unknown team.", field=field, code="not_found")
    return team


def _key(view: OrgAPIView, key_id: int | None, field: str = "key") -> VirtualKey | None:
    if key_id is None:
        return None
    key = view.scoped(VirtualKey).filter(pk=key_id).first()
    if key is None:
        raise ApplicationError("Unknown key.", field=field, code="not_found")
    return key


def _user(view: OrgAPIView, user_id: int | None, field: str = "user") -> User | None:
    if user_id is None:
        return None
    user = User.objects.filter(pk=user_id, memberships__organization=view.organization).first()
    if user is None:
        raise ApplicationError("Unknown user.", field=field, code="not_found")
    return user


class InstantField(serializers.DateTimeField):
    """An ISO 8601 date-time, or a date (YYYY-MM-DD): its midnight in the organization's time zone."""

    def to_internal_value(self, value):
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, str) and len(text) == 10:
            try:
                day = date.fromisoformat(text)
            except ValueError as exc:
                raise serializers.ValidationError("Enter a date (YYYY-MM-DD) or an ISO 8601 date-time.") from exc
            return datetime.combine(day, time.min, tzinfo=zoneinfo.ZoneInfo(self.context["time_zone"]))
        return super().to_internal_value(value)


# Read helpers that only these endpoints need (the price book and rates are read through `billing.selectors`,
# as the dashboard's pages read them).


def _with_spend(budget: Budget, now: datetime) -> Budget:
    """Attach the current period's spend, its bounds and the percentage used, for BudgetSerializer."""
    return _with_spend_all([budget], now)[0]


def _with_spend_all(budgets: list[Budget], now: datetime) -> list[Budget]:
    """_with_spend for a page, and what each holds reserved (one read of the shared counters for the page)."""
    for budget in budgets:
        spent, start, end = selectors.budget_spent(budget=budget, at=now)
        budget.spent, budget.period_start, budget.period_end = spent, start, end
        budget.percent = (spent * 100 / budget.amount).quantize(Decimal("0.01")) if budget.amount else Decimal(0)
    if budgets:
        reserved = selectors.budget_reserved(
            budgets, {b.pk: b.spent for b in budgets}, time_zone=budgets[0].organization.time_zone, now=now,
        ) or {}
        for budget in budgets:
            budget.reserved = reserved.get(budget.pk)
    return budgets


def _budgets(actor: OrgContext) -> QuerySet[Budget]:
    """The budgets the caller may see (a member: those that apply to them), as `dashboard.budgets_visible_to` decides."""
    return dashboard.budgets_visible_to(actor).select_related("organization")


def _usage_key_ids(actor: OrgContext) -> list[int] | None:
    """None when the caller sees every key's usage; else the ids of their own keys (view_own_usage)."""
    if actor.can(Perm.VIEW_USAGE):
        return None
    if actor.user is None:  # a token whose creator left: "own" would match the unowned keys
        return []
    return list(VirtualKey.objects.filter(organization=actor.organization, user=actor.user).values_list("pk", flat=True))


SUMMED = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens", "cost", "unpriced")


def _usage_summary(*, organization, since, until, group_by: str, filters: dict, key_ids: list[int] | None) -> list[dict]:
    """`selectors.usage_summary`, restricted to `key_ids` when given (one rollup query per key, merged)."""
    if key_ids is None:
        return selectors.usage_summary(organization=organization, since=since, until=until, group_by=group_by, filters=filters)
    column = selectors.GROUPS[group_by]
    merged: dict = {}
    for key_id in key_ids:
        rows = selectors.usage_summary(organization=organization, since=since, until=until, group_by=group_by, filters={**filters, "key_id": key_id})
        for row in rows:
            into = merged.setdefault(row[column], {column: row[column], **dict.fromkeys(SUMMED, 0)})
            for name in SUMMED:
                into[name] += row[name] or 0
    return [merged[group] for group in sorted(merged)]


def _group_labels(organization, group_by: str, values: list) -> dict:
    """Names for the ids a summary is grouped by, looked up inside the organization only."""
    ids = [v for v in values if v]
    if group_by == "key":
        return dict(VirtualKey.objects.filter(organization=organization, pk__in=ids).values_list("pk", "name"))
    if group_by == "team":
        return dict(Team.objects.filter(organization=organization, pk__in=ids).values_list("pk", "name"))
    if group_by == "user":
        return dict(User.objects.filter(memberships__organization=organization, pk__in=ids).values_list("pk", "email"))
    if group_by == "deployment":
        return {d.pk: str(d) for d in Deployment.objects.filter(organization=organization, pk__in=ids).select_related("credential")}
    if group_by == "endpoint":
        return {value: endpoint_label(value) for value in values}
    return {}


# Prices

PRICE_BOOK_NOTE = (
    "Prices are never edited in place: a change is a new entry with a later `effective_from`, so usage "
    "already recorded keeps the cost it was charged at, and there is no PUT or PATCH. The book is the "
    "organization's own entries (`scope: org`) plus the seeded global entries (`scope: global`) of the "
    "models it has not priced itself; for each model the newest entry that has taken effect is `in_force`."
)


class PriceListApi(OrgAPIView):
    permissions = {"GET": Perm.VIEW_ORG, "POST": Perm.MANAGE_PROVIDERS}
    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        provider = serializers.CharField(required=False, allow_blank=True, max_length=32, help_text="Only this provider's entries.")
        model = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="Only this upstream model's entries.")

    class InputSerializer(serializers.Serializer):
        provider = serializers.ChoiceField(choices=list(PRESETS), help_text="As in a credential's `provider`.")
        upstream_model = serializers.CharField(max_length=200, help_text="The model's name at the provider.")
        currency = serializers.RegexField(r"^[A-Za-z]{3}$", help_text="ISO 4217, e.g. USD or CNY.")
        input_per_m = DecimalStringField(help_text="Per 1M input tokens, in `currency`.")
        cached_input_per_m = DecimalStringField(required=False, allow_null=True, help_text="Per 1M cached input tokens; null: the input price.")
        cache_write_per_m = DecimalStringField(
            required=False, allow_null=True, help_text="Per 1M prompt tokens written to the provider's cache (Anthropic); null: the input price.",
        )
        output_per_m = DecimalStringField(help_text="Per 1M output tokens.")
        per_search_unit = DecimalStringField(
            required=False, allow_null=True, help_text="Per rerank search unit (Cohere: a query with up to 100 documents); null: none.",
        )
        tiers = PriceTierSerializer(
            many=True, required=False, help_text="Prices for larger prompts; the highest tier exceeded prices the whole request."
        )
        windows = PriceWindowSerializer(many=True, required=False, help_text="Time-of-day multipliers, in `time_zone`.")
        time_zone = serializers.ChoiceField(choices=TIME_ZONE_CHOICES, default="UTC")
        effective_from = serializers.DateTimeField(required=False, help_text="Default: now. Never in the past.")
        source = serializers.CharField(max_length=300, required=False, allow_blank=True, help_text="Where the price comes from.")

        class Meta:
            ref_name = "PriceCreate"

        def validate_effective_from(self, value):
            if value < timezone.now() - PRICE_BACKDATE_SLACK:
                raise serializers.ValidationError("A price cannot start in the past: recorded usage keeps the price it was charged at.")
            return value

    OutputSerializer = PriceSerializer

    @extend_schema(tags=["prices"], parameters=[FilterSerializer], responses=OutputSerializer(many=True), description=PRICE_BOOK_NOTE)
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        book = selectors.price_book(organization=self.organization, provider=filters.validated_data.get("provider"),
                          upstream_model=filters.validated_data.get("model"))
        paginator = self.pagination_class()
        page = selectors.prices_mark_in_force(paginator.paginate_queryset(book, request, view=self), book)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(tags=["prices"], request=InputSerializer, responses={201: OutputSerializer}, description=PRICE_BOOK_NOTE)
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        price = services.price_create(actor=self.org_context, ip=self.client_ip(), **serializer.validated_data)
        return Response(self.OutputSerializer(selectors.prices_mark_in_force([price], selectors.price_book(organization=self.organization))[0]).data,
                        status=status.HTTP_201_CREATED)


class PriceDetailApi(OrgAPIView):
    """One entry of the organization's book or of the global book. Entries never change (see the list)."""

    permissions = {"GET": Perm.VIEW_ORG}
    OutputSerializer = PriceSerializer

    @extend_schema(tags=["prices"], responses=OutputSerializer)
    def get(self, request, pk):
        prices = Price.objects.filter(Q(organization=self.organization) | Q(organization=None))
        price = prices.filter(pk=pk).first()
        if price is None:
            raise ApplicationError("Not found.", code="not_found", status=404)
        return Response(self.OutputSerializer(selectors.prices_mark_in_force([price], selectors.price_book(organization=self.organization))[0]).data)


# Exchange rates


class ExchangeRateListApi(OrgAPIView):
    """What other currencies are worth in the organization's currency; setting one needs manage_org.

    A new rate applies to requests from now on; recorded usage keeps the rate it was converted at.
    """

    permissions = {"GET": Perm.VIEW_ORG, "POST": Perm.MANAGE_ORG}
    pagination_class = Pagination

    class InputSerializer(serializers.Serializer):
        currency = serializers.RegexField(r"^[A-Za-z]{3}$", help_text="ISO 4217, e.g. CNY.")
        rate = DecimalStringField(help_text="One unit of `currency` in the organization's currency, e.g. 0.14.")

        class Meta:
            ref_name = "ExchangeRateSet"

    OutputSerializer = ExchangeRateSerializer

    @extend_schema(tags=["prices"], responses=OutputSerializer(many=True))
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.exchange_rate_list(organization=self.organization), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(selectors.exchange_rates_mark_in_force(page, organization=self.organization), many=True).data)

    @extend_schema(tags=["prices"], request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if serializer.validated_data["currency"].upper() == self.organization.currency:
            raise ApplicationError("This is the organization's own currency.", field="currency")
        rate = services.exchange_rate_set(actor=self.org_context, ip=self.client_ip(), **serializer.validated_data)
        return Response(self.OutputSerializer(selectors.exchange_rates_mark_in_force([rate], organization=self.organization)[0]).data, status=status.HTTP_201_CREATED)


# Budgets


class _BudgetFields(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False, allow_blank=True)
    period = serializers.ChoiceField(choices=Budget.Period.choices, required=False, help_text="Calendar periods in the organization's time zone.")
    amount = DecimalStringField(max_digits=20, decimal_places=6, help_text="In the organization's currency.")
    hard = serializers.BooleanField(required=False, help_text="true (default): refuse requests past the amount; false: alert only.")
    thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=1000), required=False, allow_empty=True,
        help_text="Alert at these percentages of the amount; default [50, 80, 100]; [] turns threshold alerts off.",
    )
    downgrade_model = serializers.CharField(max_length=120, required=False, allow_blank=True,
                                            help_text="A model to switch to instead of refusing, once the budget is spent.")


class BudgetListApi(OrgAPIView):
    """Budgets with their spend in the current period. Reading needs view_org, creating manage_budgets."""

    permissions = {"GET": Perm.VIEW_ORG, "POST": Perm.MANAGE_BUDGETS}
    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        scope = serializers.ChoiceField(choices=Budget.Scope.choices, required=False, help_text="Only budgets of this scope.")

    class InputSerializer(_BudgetFields):
        scope = serializers.ChoiceField(choices=Budget.Scope.choices)
        team = serializers.IntegerField(required=False, allow_null=True, min_value=1, help_text="A team id; only for scope team.")
        key = serializers.IntegerField(required=False, allow_null=True, min_value=1, help_text="A virtual key id; only for scope key.")
        user = serializers.IntegerField(required=False, allow_null=True, min_value=1, help_text="A member's user id; only for scope user.")

        class Meta:
            ref_name = "BudgetCreate"

        def validate(self, data):
            for name in ("team", "key", "user"):
                if data.get(name) is not None and data["scope"] != name:
                    raise serializers.ValidationError({name: f"Only for a budget of scope {name}."})
            if data["scope"] in ("team", "key", "user") and data.get(data["scope"]) is None:
                raise serializers.ValidationError({data["scope"]: "Required for this scope."})
            return data

    OutputSerializer = BudgetSerializer

    @extend_schema(tags=["budgets"], parameters=[FilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        budgets = _budgets(self.org_context)
        if filters.validated_data.get("scope"):
            budgets = budgets.filter(scope=filters.validated_data["scope"])
        paginator = self.pagination_class()
        now = timezone.now()
        page = _with_spend_all(list(paginator.paginate_queryset(budgets, request, view=self)), now)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(tags=["budgets"], request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data["team"], data["key"], data["user"] = _team(self, data.get("team")), _key(self, data.get("key")), _user(self, data.get("user"))
        budget = services.budget_create(actor=self.org_context, ip=self.client_ip(), **data)
        budget = _budgets(self.org_context).get(pk=budget.pk)
        return Response(self.OutputSerializer(_with_spend(budget, timezone.now())).data, status=status.HTTP_201_CREATED)


class BudgetDetailApi(OrgAPIView):
    """One budget. Its scope and target cannot change: create another budget instead."""

    permissions = {"GET": Perm.VIEW_ORG, "PATCH": Perm.MANAGE_BUDGETS, "DELETE": Perm.MANAGE_BUDGETS}

    class InputSerializer(_BudgetFields):
        amount = DecimalStringField(max_digits=20, decimal_places=6, required=False, help_text="In the organization's currency.")

        class Meta:
            ref_name = "BudgetUpdate"

    OutputSerializer = BudgetSerializer

    def _get(self, pk):
        return self.get_scoped(_budgets(self.org_context), pk=pk)

    @extend_schema(tags=["budgets"], responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(_with_spend(self._get(pk), timezone.now())).data)

    @extend_schema(tags=["budgets"], request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, pk):
        budget = self._get(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.budget_update(actor=self.org_context, budget=budget, ip=self.client_ip(), **serializer.validated_data)
        return Response(self.OutputSerializer(_with_spend(self._get(pk), timezone.now())).data)

    @extend_schema(tags=["budgets"], responses={204: None})
    def delete(self, request, pk):
        services.budget_delete(actor=self.org_context, budget=self._get(pk), ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)


# Usage

OWN_USAGE_NOTE = "Callers with view_usage see every request; others (members) only those made with their own keys."


class _UsageFilters(serializers.Serializer):
    since = InstantField(required=False, help_text="From this instant (a date means its midnight in the org's time zone).")
    until = InstantField(required=False, help_text="Before this instant; default now.")
    team = serializers.IntegerField(required=False, min_value=1, help_text="A team id.")
    key = serializers.IntegerField(required=False, min_value=1, help_text="A virtual key id.")
    user = serializers.IntegerField(required=False, min_value=1, help_text="A user id.")
    model = serializers.CharField(required=False, allow_blank=True, max_length=120, help_text="A public model name.")
    deployment = serializers.IntegerField(required=False, min_value=1, help_text="A deployment id.")
    endpoint = serializers.ChoiceField(
        choices=list(ENDPOINT_LABELS), required=False, help_text="Only this endpoint's requests (chat, embeddings, rerank, messages, …).",
    )

    def validate(self, data):
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise serializers.ValidationError({"until": "Must be later than since."})
        return data

    def selector_filters(self) -> dict:
        data = self.validated_data
        return {
            "team_id": data.get("team"), "key_id": data.get("key"), "user_id": data.get("user"),
            "model_name": data.get("model"), "deployment_id": data.get("deployment"), "endpoint": data.get("endpoint"),
        }


class _UsageTotals(serializers.Serializer):
    requests = serializers.IntegerField(read_only=True)
    errors = serializers.IntegerField(read_only=True)
    prompt_tokens = serializers.IntegerField(read_only=True)
    cached_tokens = serializers.IntegerField(read_only=True)
    completion_tokens = serializers.IntegerField(read_only=True)
    cost = MoneyField(help_text="In the organization's currency; unpriced requests are not in it (see `unpriced`).")
    unpriced = serializers.IntegerField(read_only=True, help_text="Successful requests without a known price.")

    class Meta:
        ref_name = "UsageTotals"


class UsageSummaryApi(OrgAPIView):
    """Usage totals over a time range, grouped: exactly the usage in [since, until), from the hourly and
    daily rollups for the whole hours inside and the request log for the partial hours at either edge.
    The default range is the last 30 days.
    """

    permissions = {"GET": Perm.VIEW_OWN_USAGE}

    class FilterSerializer(_UsageFilters):
        group_by = serializers.ChoiceField(
            choices=list(selectors.GROUPS), default="day",
            help_text="day: one row per rollup bucket (hours for ranges up to two days, else UTC days); endpoint: chat, "
                      "embeddings, rerank, messages, … (\"\": usage rolled up before endpoints were recorded).",
        )

    class OutputSerializer(serializers.Serializer):
        class RowSerializer(_UsageTotals):
            group = serializers.CharField(read_only=True, help_text="The bucket start, the model name, or the id (0: none).")
            label = serializers.CharField(read_only=True, allow_null=True, help_text="The key, team, user, deployment or endpoint's name.")

            class Meta:
                ref_name = "UsageSummaryRow"

        since = serializers.DateTimeField(read_only=True)
        until = serializers.DateTimeField(read_only=True)
        group_by = serializers.CharField(read_only=True)
        currency = serializers.CharField(read_only=True, help_text="The organization's currency, of every cost.")
        results = RowSerializer(many=True, read_only=True)
        totals = _UsageTotals(read_only=True)

        class Meta:
            ref_name = "UsageSummary"

    @extend_schema(tags=["usage"], parameters=[FilterSerializer], responses=OutputSerializer, description=OWN_USAGE_NOTE)
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict(), context={"time_zone": self.organization.time_zone})
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        until = data.get("until") or timezone.now()
        since = data.get("since") or until - timedelta(days=DEFAULT_USAGE_DAYS)
        if since >= until:
            raise ApplicationError("Must be earlier than until.", field="since")
        selector_filters = filters.selector_filters()
        key_ids = _usage_key_ids(self.org_context)
        if key_ids is not None and selector_filters["key_id"] is not None:
            key_ids = [k for k in key_ids if k == selector_filters["key_id"]]
        group_by = data["group_by"]
        rows = _usage_summary(organization=self.organization, since=since, until=until, group_by=group_by,
                              filters=selector_filters, key_ids=key_ids)
        column = selectors.GROUPS[group_by]
        labels = _group_labels(self.organization, group_by, [row[column] for row in rows])
        as_text = serializers.DateTimeField().to_representation if group_by == "day" else str
        results = [{**row, "group": as_text(row[column]), "label": labels.get(row[column])} for row in rows]
        totals = {name: sum((row[name] or 0 for row in rows), Decimal(0) if name == "cost" else 0) for name in SUMMED}
        body = {"since": since, "until": until, "group_by": group_by, "currency": self.organization.currency,
                "results": results, "totals": totals}
        return Response(self.OutputSerializer(body).data)


class UsageEventListApi(OrgAPIView):
    """The request log, newest first: one row per request, with tokens and cost. Prompts and answers are never stored."""

    permissions = {"GET": Perm.VIEW_OWN_USAGE}
    pagination_class = Pagination

    class FilterSerializer(_UsageFilters):
        status = serializers.IntegerField(required=False, min_value=100, max_value=599, help_text="Only this HTTP status.")
        errors_only = serializers.BooleanField(required=False, default=False, help_text="Only failed requests (status ≥ 400).")

    OutputSerializer = UsageEventSerializer

    @extend_schema(tags=["usage"], parameters=[FilterSerializer], responses=OutputSerializer(many=True), description=OWN_USAGE_NOTE)
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict(), context={"time_zone": self.organization.time_zone})
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        events = selectors.usage_events(
            organization=self.organization,
            filters={**filters.selector_filters(), "since": data.get("since"), "until": data.get("until"),
                     "status_code": data.get("status"), "errors_only": data["errors_only"]},
        )
        key_ids = _usage_key_ids(self.org_context)
        if key_ids is not None:
            events = events.filter(key_id__in=key_ids)
        return paginated_response(self, events, self.OutputSerializer)


class UsageBacklogApi(OrgAPIView):
    """How far the ledger is behind: usage recorded by the relay and not yet in the ledger, and the records
    the ledger refused (dead letters, billing.ledger).

    The stream figures are the installation's (the stream carries every organization's batches, and
    entries are read as a whole): `waiting` stream entries (batches of up to 500 requests, one per relay
    flush), `pending` (read by a worker, not yet committed) and the oldest entry's age; they say how fresh
    the ledger is and nothing about another organization's usage. `dead_letters` counts this
    organization's refused records; staff users also get `dead_letters_all`, the installation's. Without
    Redis (embedded mode) the relay writes the ledger directly: the stream figures are null.
    """

    permissions = {"GET": Perm.VIEW_USAGE}

    class OutputSerializer(serializers.Serializer):
        stream = serializers.BooleanField(help_text="Usage travels through the Redis stream (false: embedded mode, or Redis unreachable).")
        waiting = serializers.IntegerField(allow_null=True, help_text="Stream entries not yet in the ledger.")
        pending = serializers.IntegerField(allow_null=True, help_text="Of those, entries a worker has read and not yet committed.")
        oldest_age_seconds = serializers.FloatField(allow_null=True, help_text="Age of the oldest waiting entry (null: none).")
        dead_letters = serializers.IntegerField(help_text="This organization's usage records the ledger refused.")
        dead_letters_all = serializers.IntegerField(required=False, help_text="Staff only: every organization's.")

        class Meta:
            ref_name = "UsageBacklog"

    @extend_schema(tags=["usage"], responses=OutputSerializer)
    def get(self, request):
        from django.conf import settings

        from billing import ledger

        body = {"stream": False, "waiting": None, "pending": None, "oldest_age_seconds": None,
                "dead_letters": UsageDeadLetter.objects.filter(organization=self.organization).count()}
        if settings.REDIS_URL:
            import redis

            client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
            try:
                body.update(ledger.usage_backlog(client), stream=True)
            except redis.RedisError:
                pass  # the figures stay null: unknown, not zero
            finally:
                client.close()
        if getattr(request.user, "is_staff", False):
            body["dead_letters_all"] = UsageDeadLetter.objects.count()
        return Response(self.OutputSerializer(body).data)


# The cost estimator


class _EstimateDeployment(serializers.Serializer):
    deployment_id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    provider = serializers.CharField(read_only=True)
    upstream_model = serializers.CharField(read_only=True)
    weight = serializers.IntegerField(read_only=True)
    order = serializers.IntegerField(read_only=True)
    unpriced = serializers.BooleanField(read_only=True, help_text="true: no price is known for this deployment.")
    missing = serializers.CharField(read_only=True, help_text='What is missing: "", "price" or "exchange_rate".')
    price_id = serializers.IntegerField(read_only=True, allow_null=True)
    currency = serializers.CharField(read_only=True, help_text="The price's currency.")
    window_multiplier = MoneyField(allow_null=True, help_text="The time-of-day multiplier applied.")
    cost = MoneyField(allow_null=True, help_text="In `currency`.")
    exchange_rate = MoneyField(allow_null=True)
    cost_display = MoneyField(allow_null=True, help_text="In the organization's currency; null without an exchange rate.")

    class Meta:
        ref_name = "EstimateDeployment"


class _EstimateModel(serializers.Serializer):
    model = serializers.CharField(read_only=True)
    input_tokens = serializers.IntegerField(read_only=True)
    output_tokens = serializers.IntegerField(read_only=True)
    unpriced = serializers.BooleanField(read_only=True, help_text="true: the main deployment has no price (or there is none).")
    missing = serializers.CharField(read_only=True, help_text='"", "deployment", "price" or "exchange_rate".')
    currency = serializers.CharField(read_only=True, source="main.currency", allow_null=True, help_text="The price's currency.")
    cost = MoneyField(source="main.cost", allow_null=True, help_text="In `currency`.")
    cost_display = MoneyField(source="main.cost_display", allow_null=True, help_text="In the organization's currency.")
    deployment_id = serializers.IntegerField(read_only=True, source="main.deployment_id", allow_null=True,
                                             help_text="The deployment priced above: where traffic goes first.")
    deployments = _EstimateDeployment(many=True, read_only=True, help_text="Every active deployment, priced.")

    class Meta:
        ref_name = "EstimateModel"


class EstimateApi(OrgAPIView):
    """Estimate a job's tokens and its cost on several models side by side, before running it.

    Give a `text`, an uploaded `file` (multipart; UTF-8, at most 5 MB), or a number of `documents` with their
    average size in tokens or characters (4 characters ≈ 1 token). A text or file is one request; each document
    is one request. Input tokens are counted offline with the o200k_base tokenizer (exact for current OpenAI
    models, close for others). Each model is priced at its deployments' prices in force at `at` (default now,
    time-of-day windows included, no cache discounts) and converted at the organization's exchange rates.
    """

    permissions = {"POST": Perm.VIEW_ORG}
    parser_classes = [BoundedJSONParser, MultiPartParser, FormParser]
    max_request_bytes = estimator.MAX_REQUEST_BYTES  # config/body_limit.py

    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(required=False, trim_whitespace=False, max_length=estimator.MAX_UPLOAD_BYTES)
        documents = serializers.IntegerField(
            required=False, min_value=1, max_value=estimator.MAX_DOCUMENTS, help_text="How many documents, one request each."
        )
        average_document_tokens = serializers.IntegerField(required=False, min_value=1, max_value=estimator.MAX_TOKENS_PER_REQUEST)
        average_document_characters = serializers.IntegerField(
            required=False, min_value=1, max_value=estimator.MAX_TOKENS_PER_REQUEST * estimator.CHARS_PER_TOKEN
        )
        expected_output_tokens = serializers.IntegerField(min_value=0, max_value=estimator.MAX_TOKENS_PER_REQUEST, help_text="Per request.")
        models = serializers.ListField(
            child=serializers.CharField(max_length=120), min_length=1, max_length=estimator.MAX_MODELS,
            help_text="Public model names of the organization, compared side by side.",
        )
        at = serializers.DateTimeField(required=False, help_text="Price at this instant (e.g. peak vs off-peak); default now.")

        class Meta:
            ref_name = "EstimateRequest"

    class UploadSerializer(InputSerializer):
        file = serializers.FileField(required=False, help_text="A text file, instead of `text`.")

        class Meta:
            ref_name = "EstimateUpload"

    class OutputSerializer(serializers.Serializer):
        at = serializers.DateTimeField(read_only=True)
        currency = serializers.CharField(read_only=True, help_text="The organization's currency (of `cost_display`).")
        input_source = serializers.CharField(read_only=True, help_text="text, document_tokens or document_characters.")
        requests = serializers.IntegerField(read_only=True)
        input_tokens_per_request = serializers.IntegerField(read_only=True)
        output_tokens_per_request = serializers.IntegerField(read_only=True)
        input_tokens = serializers.IntegerField(read_only=True)
        output_tokens = serializers.IntegerField(read_only=True)
        models = _EstimateModel(many=True, read_only=True)

        class Meta:
            ref_name = "Estimate"

    @extend_schema(
        tags=["usage"],
        request={"application/json": InputSerializer, "multipart/form-data": UploadSerializer},
        responses=OutputSerializer,
    )
    def post(self, request):
        serializer = self.UploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        upload = data.pop("file", None)
        if upload is not None:
            if "text" in data:
                raise ApplicationError("Give either a text or a file, not both.", field="file")
            data["text"] = estimator.upload_text(upload=upload)
        result = estimator.estimate_cost(organization=self.organization, **data)
        return Response(self.OutputSerializer(result).data)


# Alert channels and the delivery log

CHANNEL_NOTE = (
    "Webhook channels sign every delivery (Standard Webhooks: `webhook-id`, `webhook-timestamp`, "
    "`webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`); their secret is generated on "
    "create and shown in that response and after a rotation only. Feishu and DingTalk bots take the "
    "signing secret the bot settings show (write-only). Bot URLs carry a token, so URLs are shown as "
    "scheme and host only."
)


class AlertChannelListApi(OrgAPIView):
    """Where alerts go: email, signed webhooks, Feishu/Lark, DingTalk and WeCom bots (manage_budgets to change)."""

    permissions = {"GET": Perm.VIEW_ORG, "POST": Perm.MANAGE_BUDGETS}
    pagination_class = Pagination

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120)
        kind = serializers.ChoiceField(choices=AlertChannel.Kind.choices)
        target = serializers.CharField(max_length=2000, help_text="Email addresses (comma-separated) or the HTTPS URL.")
        secret = serializers.CharField(
            write_only=True, required=False, allow_blank=True, max_length=200,
            help_text="Feishu/DingTalk: the bot's signing secret. Webhook: generated when omitted.",
        )
        enabled = serializers.BooleanField(required=False, default=True)

        class Meta:
            ref_name = "AlertChannelCreate"

    OutputSerializer = AlertChannelSerializer

    @extend_schema(tags=["alerts"], responses=OutputSerializer(many=True), description=CHANNEL_NOTE)
    def get(self, request):
        return paginated_response(self, dashboard.alert_channels_visible_to(self.org_context), self.OutputSerializer)

    @extend_schema(tags=["alerts"], request=InputSerializer, responses={201: AlertChannelWithSecretSerializer}, description=CHANNEL_NOTE)
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel, secret = alerts.alert_channel_create(actor=self.org_context, ip=self.client_ip(), **serializer.validated_data)
        channel = dashboard.alert_channels_visible_to(self.org_context).get(pk=channel.pk)
        return Response(AlertChannelWithSecretSerializer(channel, context={"secret": secret}).data, status=status.HTTP_201_CREATED)


class AlertChannelDetailApi(OrgAPIView):
    """One alert channel. Re-enabling a channel that was disabled after failed deliveries clears the reason."""

    permissions = {"GET": Perm.VIEW_ORG, "PATCH": Perm.MANAGE_BUDGETS, "DELETE": Perm.MANAGE_BUDGETS}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120, required=False)
        target = serializers.CharField(max_length=2000, required=False)
        secret = serializers.CharField(
            write_only=True, required=False, allow_blank=True, max_length=200,
            help_text="Feishu/DingTalk bots only (empty removes it); a webhook's secret is rotated instead.",
        )
        enabled = serializers.BooleanField(required=False)

        class Meta:
            ref_name = "AlertChannelUpdate"

    OutputSerializer = AlertChannelSerializer

    def _get(self, pk):
        return self.get_scoped(dashboard.alert_channels_visible_to(self.org_context), pk=pk)

    @extend_schema(tags=["alerts"], responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["alerts"], request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, pk):
        channel = self._get(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = alerts.alert_channel_update(actor=self.org_context, channel=channel, ip=self.client_ip(), **serializer.validated_data)
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["alerts"], responses={204: None}, description="Its delivery log goes with it.")
    def delete(self, request, pk):
        alerts.alert_channel_delete(actor=self.org_context, channel=self._get(pk), ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertChannelRotateSecretApi(OrgAPIView):
    """A new signing secret for a webhook channel, shown this once; the old one keeps signing until the next rotation."""

    permissions = {"POST": Perm.MANAGE_BUDGETS}
    OutputSerializer = AlertChannelWithSecretSerializer

    @extend_schema(tags=["alerts"], request=None, responses=OutputSerializer)
    def post(self, request, pk):
        channels = dashboard.alert_channels_visible_to(self.org_context)
        channel = self.get_scoped(channels, pk=pk)
        channel, secret = alerts.alert_channel_rotate_secret(actor=self.org_context, channel=channel, ip=self.client_ip())
        return Response(self.OutputSerializer(channels.get(pk=channel.pk), context={"secret": secret}).data)


class AlertChannelTestApi(OrgAPIView):
    """Send a test alert to the channel now (even a disabled one) and return the delivery: tried once, never retried."""

    permissions = {"POST": Perm.MANAGE_BUDGETS}
    OutputSerializer = AlertDeliverySerializer

    @extend_schema(tags=["alerts"], request=None, responses=OutputSerializer)
    def post(self, request, pk):
        channel = self.get_scoped(AlertChannel, pk=pk)
        delivery = alerts.alert_send_test(actor=self.org_context, channel=channel, ip=self.client_ip())
        delivery = AlertDelivery.objects.select_related("alert", "channel").get(pk=delivery.pk)
        return Response(self.OutputSerializer(delivery).data)


class AlertDeliveryListApi(OrgAPIView):
    """The delivery log, newest first: each alert sent to each channel, its attempts and the last answer."""

    permissions = {"GET": Perm.VIEW_ORG}
    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        channel = serializers.IntegerField(required=False, min_value=1, help_text="Only this channel's deliveries.")
        status = serializers.ChoiceField(choices=AlertDelivery.Status.choices, required=False)

    OutputSerializer = AlertDeliverySerializer

    @extend_schema(tags=["alerts"], parameters=[FilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        deliveries = dashboard.alert_deliveries_visible_to(self.org_context)
        if filters.validated_data.get("channel"):
            deliveries = deliveries.filter(channel_id=filters.validated_data["channel"])
        if filters.validated_data.get("status"):
            deliveries = deliveries.filter(status=filters.validated_data["status"])
        return paginated_response(self, deliveries, self.OutputSerializer)
