"""REST endpoints of the price book and the exchange rates (reads: billing.selectors.prices, as the prices pages)."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.api.base import OrgAPIView
from accounts.api.pagination import Pagination
from accounts.errors import ApplicationError
from accounts.models import TIME_ZONE_CHOICES
from accounts.permissions import Perm
from billing import selectors, services
from billing.api.serializers import DecimalStringField, ExchangeRateSerializer, PriceSerializer, PriceTierSerializer, PriceWindowSerializer
from wire.presets import PRESETS

# A price may start a little in the past (clock skew, a form filled in slowly), never earlier.
PRICE_BACKDATE_SLACK = timedelta(minutes=5)


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
        price = selectors.price_visible(organization=self.organization, pk=pk)
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
