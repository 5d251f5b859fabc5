"""REST endpoints of usage: the summary (billing.selectors.usage_summary, the same function the usage explorer's
totals come from), the request log and the ledger's backlog."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts.api.base import OrgAPIView
from accounts.api.pagination import Pagination
from accounts.api.views import paginated_response
from accounts.errors import ApplicationError
from accounts.permissions import Perm
from billing import selectors
from billing.api.lookups import InstantField
from billing.api.serializers import MoneyField, UsageEventSerializer

DEFAULT_USAGE_DAYS = 30
SUMMED = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens", "cost", "unpriced")
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
        choices=list(selectors.ENDPOINT_LABELS), required=False,
        help_text="Only this endpoint's requests (chat, embeddings, rerank, messages, …).",
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
        group_by = data["group_by"]
        rows = selectors.usage_summary(organization=self.organization, since=since, until=until, group_by=group_by,
                                       filters=selector_filters, key_ids=selectors.own_key_ids(self.org_context))
        column = selectors.GROUPS[group_by]
        labels = selectors.group_labels(organization=self.organization, group_by=group_by, values=[row[column] for row in rows])
        as_text = serializers.DateTimeField().to_representation if group_by == "day" else str
        results = [{**row, "group": as_text(row[column]), "label": labels.get(row[column])} for row in rows]
        totals = {name: sum((row[name] for row in rows), Decimal(0) if name == "cost" else 0) for name in SUMMED}
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
        key_ids = selectors.own_key_ids(self.org_context)
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
        body = selectors.usage_backlog_status(organization=self.organization, staff=getattr(request.user, "is_staff", False))
        return Response(self.OutputSerializer(body).data)
