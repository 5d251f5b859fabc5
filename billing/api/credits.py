"""REST endpoints for credits: a member's wallet and redemption; the admin's policy, balances,
top-ups and deductions, and redemption codes. Objects are found only in the caller's organization
(another organization's account is a 404, its code "not valid"); bad input gets field errors."""

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.api.base import OrgAPIView
from accounts.api.pagination import Pagination
from accounts.api.views import paginated_response
from accounts.errors import ApplicationError
from accounts.permissions import Perm
from billing import credit_selectors, credits
from billing.api.lookups import key_in_org, team_in_org, user_in_org
from billing.api.serializers import MoneyField
from billing.credit_codes import codes_csv, codes_status_csv, redemption_code_redeem, redemption_codes_generate
from billing.credit_grants import credit_policy_get, credit_policy_set
from billing.credit_models import CreditAccount, CreditEntry, CreditPolicy, RedemptionCode


class CreditEntrySerializer(serializers.ModelSerializer):
    amount = MoneyField()
    remaining = MoneyField()

    class Meta:
        model = CreditEntry
        fields = ["id", "kind", "amount", "remaining", "expires_at", "reason", "requests", "created_at"]


class CreditAccountSerializer(serializers.ModelSerializer):
    balance = MoneyField()
    holder = serializers.CharField(read_only=True)

    class Meta:
        model = CreditAccount
        fields = ["id", "scope", "user", "team", "key", "holder", "balance", "created_at"]


class CreditPolicySerializer(serializers.ModelSerializer):
    signup_amount = MoneyField()
    inviter_amount = MoneyField()
    invitee_amount = MoneyField()
    low_balance = MoneyField()

    class Meta:
        model = CreditPolicy
        fields = ["signup_amount", "inviter_amount", "invitee_amount", "inviter_cap", "grant_expiry_days", "low_balance"]


class RedemptionCodeSerializer(serializers.ModelSerializer):
    amount = MoneyField()
    redeemed_by = serializers.EmailField(source="redeemed_by.email", read_only=True, default=None)

    class Meta:
        model = RedemptionCode
        fields = ["id", "batch", "prefix", "amount", "expires_at", "created_at", "redeemed_at", "redeemed_by"]


def with_balances(accounts: list[CreditAccount]) -> list[CreditAccount]:
    balances = credit_selectors.credit_balances(account_ids=[a.pk for a in accounts])
    for account in accounts:
        account.balance = balances[account.pk]
    return accounts


class WalletApi(OrgAPIView):
    """The caller's own balance (as a member) and its latest 100 entries."""

    permissions = {"GET": Perm.VIEW_OWN_USAGE}

    @extend_schema(tags=["credits"])
    def get(self, request):
        user = self.org_context.user
        account = credits.credit_account_get(organization=self.organization, user=user, create=False) if user else None
        entries = list(account.entries.all()[:100]) if account else []
        return Response({
            "currency": self.organization.currency,
            "balance": MoneyField().to_representation(credits.credit_balance(account=account)) if account else "0",
            "entries": CreditEntrySerializer(entries, many=True).data,
        })


class RedeemApi(OrgAPIView):
    """Redeem a code of this organization into the caller's own balance."""

    permissions = {"POST": Perm.VIEW_OWN_USAGE}

    class InputSerializer(serializers.Serializer):
        code = serializers.CharField(max_length=64)

    @extend_schema(tags=["credits"], request=InputSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entry = redemption_code_redeem(actor=self.org_context, code=data.validated_data["code"], ip=self.client_ip())
        return Response({
            "amount": MoneyField().to_representation(entry.amount),
            "balance": MoneyField().to_representation(credits.credit_balance(account=entry.account)),
        }, status=status.HTTP_201_CREATED)


class CreditPolicyApi(OrgAPIView):
    """The grant policy: sign-up and invitation grants, the cap per inviter, expiry, the low-balance alert."""

    permissions = {"GET": Perm.MANAGE_BUDGETS, "PUT": Perm.MANAGE_BUDGETS}

    class InputSerializer(serializers.Serializer):
        signup_amount = serializers.CharField(required=False, allow_blank=True, allow_null=True)
        inviter_amount = serializers.CharField(required=False, allow_blank=True, allow_null=True)
        invitee_amount = serializers.CharField(required=False, allow_blank=True, allow_null=True)
        inviter_cap = serializers.CharField(required=False, allow_blank=True, allow_null=True)
        grant_expiry_days = serializers.CharField(required=False, allow_blank=True, allow_null=True)
        low_balance = serializers.CharField(required=False, allow_blank=True, allow_null=True)

    @extend_schema(tags=["credits"], responses=CreditPolicySerializer)
    def get(self, request):
        return Response(CreditPolicySerializer(credit_policy_get(organization=self.organization)).data)

    @extend_schema(tags=["credits"], request=InputSerializer, responses=CreditPolicySerializer)
    def put(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy = credit_policy_set(actor=self.org_context, ip=self.client_ip(), **data.validated_data)
        return Response(CreditPolicySerializer(policy).data)


class CreditAccountListApi(OrgAPIView):
    """Every balance of the organization; POST tops one up or deducts from it (created on first top-up)."""

    permissions = {"GET": Perm.MANAGE_BUDGETS, "POST": Perm.MANAGE_BUDGETS}
    pagination_class = Pagination

    class InputSerializer(serializers.Serializer):
        action = serializers.ChoiceField(choices=["topup", "deduct"])
        user = serializers.IntegerField(required=False, min_value=1)
        team = serializers.IntegerField(required=False, min_value=1)
        key = serializers.IntegerField(required=False, min_value=1)
        amount = serializers.CharField(max_length=40)
        reason = serializers.CharField(max_length=300, allow_blank=True)

        def validate(self, data):
            given = [name for name in ("user", "team", "key") if data.get(name) is not None]
            if len(given) != 1:
                raise serializers.ValidationError({"user": "Name exactly one of user, team or key."})
            return data

    @extend_schema(tags=["credits"], responses=CreditAccountSerializer(many=True))
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(self.scoped(CreditAccount).select_related("user", "team", "key").order_by("id"), request, view=self)
        return paginator.get_paginated_response(CreditAccountSerializer(with_balances(list(page)), many=True).data)

    @extend_schema(tags=["credits"], request=InputSerializer, responses={201: CreditEntrySerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        holder = {"user": user_in_org(self, v.get("user")), "team": team_in_org(self, v.get("team")), "key": key_in_org(self, v.get("key"))}
        if v["action"] == "deduct":
            account = credits.credit_account_get(organization=self.organization, create=False, **holder)
            if account is None:
                raise ApplicationError("This balance is empty: nothing to deduct.", field="amount")
            entry = credits.credit_deduct(actor=self.org_context, account=account, amount=v["amount"], reason=v["reason"], ip=self.client_ip())
        else:
            credits.check_amount(v["amount"])  # before an account is created for nothing
            account = credits.credit_account_get(organization=self.organization, **holder)
            entry = credits.credit_topup(actor=self.org_context, account=account, amount=v["amount"], reason=v["reason"], ip=self.client_ip())
        return Response(CreditEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


class CreditEntryListApi(OrgAPIView):
    """One balance's ledger, newest first."""

    permissions = {"GET": Perm.MANAGE_BUDGETS}
    pagination_class = Pagination

    @extend_schema(tags=["credits"], responses=CreditEntrySerializer(many=True))
    def get(self, request, pk):
        account = self.get_scoped(CreditAccount, pk=pk)
        return paginated_response(self, account.entries.all(), CreditEntrySerializer)


class RedemptionCodeListApi(OrgAPIView):
    """Codes without their secrets (GET; `?export=csv` as CSV); POST generates a batch and returns its
    codes, the only time they are shown (JSON, or CSV with `?export=csv`)."""

    permissions = {"GET": Perm.MANAGE_BUDGETS, "POST": Perm.MANAGE_BUDGETS}
    pagination_class = Pagination

    class InputSerializer(serializers.Serializer):
        count = serializers.IntegerField()
        amount = serializers.CharField(max_length=40)
        expires_at = serializers.DateTimeField()

    @extend_schema(tags=["credits"], responses=RedemptionCodeSerializer(many=True))
    def get(self, request):
        codes = self.scoped(RedemptionCode).select_related("redeemed_by")
        if request.query_params.get("export") == "csv":
            return _csv_response(codes_status_csv(codes), "redemption-codes.csv")
        return paginated_response(self, codes, RedemptionCodeSerializer)

    @extend_schema(tags=["credits"], request=InputSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        batch, pairs = redemption_codes_generate(actor=self.org_context, ip=self.client_ip(), **data.validated_data)
        if request.query_params.get("export") == "csv":
            return _csv_response(codes_csv(pairs, currency=self.organization.currency), f"codes-{batch}.csv", status=201)
        first = pairs[0][0]
        return Response({
            "batch": batch, "amount": MoneyField().to_representation(first.amount), "expires_at": first.expires_at,
            "codes": [code for _row, code in pairs],
        }, status=status.HTTP_201_CREATED)


def _csv_response(text: str, filename: str, status: int = 200) -> HttpResponse:
    response = HttpResponse(text, content_type="text/csv; charset=utf-8", status=status)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"  # a batch's codes must not linger in a cache
    return response

