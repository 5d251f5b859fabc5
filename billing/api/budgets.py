"""REST endpoints of budgets, each with its spend in the current period (billing.selectors.budgets, as the
budgets page reads it). A member sees the budgets that apply to them."""


from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.api.base import OrgAPIView
from accounts.api.pagination import Pagination
from accounts.permissions import Perm
from billing import selectors, services
from billing.api.lookups import key_in_org, team_in_org, user_in_org
from billing.api.serializers import BudgetSerializer, DecimalStringField
from billing.models import Budget


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


def _spend(budget: Budget) -> Budget:
    return selectors.budgets_with_spend([budget], now=timezone.now())[0]


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
        budgets = selectors.budgets_visible_to(self.org_context).select_related("organization")
        if filters.validated_data.get("scope"):
            budgets = budgets.filter(scope=filters.validated_data["scope"])
        paginator = self.pagination_class()
        now = timezone.now()
        page = selectors.budgets_with_spend(list(paginator.paginate_queryset(budgets, request, view=self)), now=now)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(tags=["budgets"], request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data["team"], data["key"], data["user"] = team_in_org(self, data.get("team")), key_in_org(self, data.get("key")), user_in_org(self, data.get("user"))
        budget = services.budget_create(actor=self.org_context, ip=self.client_ip(), **data)
        budget = selectors.budgets_visible_to(self.org_context).select_related("organization").get(pk=budget.pk)
        return Response(self.OutputSerializer(_spend(budget)).data, status=status.HTTP_201_CREATED)


class BudgetDetailApi(OrgAPIView):
    """One budget. Its scope and target cannot change: create another budget instead."""

    permissions = {"GET": Perm.VIEW_ORG, "PATCH": Perm.MANAGE_BUDGETS, "DELETE": Perm.MANAGE_BUDGETS}

    class InputSerializer(_BudgetFields):
        amount = DecimalStringField(max_digits=20, decimal_places=6, required=False, help_text="In the organization's currency.")

        class Meta:
            ref_name = "BudgetUpdate"

    OutputSerializer = BudgetSerializer

    def _get(self, pk):
        return self.get_scoped(selectors.budgets_visible_to(self.org_context).select_related("organization"), pk=pk)

    @extend_schema(tags=["budgets"], responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(_spend(self._get(pk))).data)

    @extend_schema(tags=["budgets"], request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, pk):
        budget = self._get(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.budget_update(actor=self.org_context, budget=budget, ip=self.client_ip(), **serializer.validated_data)
        return Response(self.OutputSerializer(_spend(self._get(pk))).data)

    @extend_schema(tags=["budgets"], responses={204: None})
    def delete(self, request, pk):
        services.budget_delete(actor=self.org_context, budget=self._get(pk), ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)
