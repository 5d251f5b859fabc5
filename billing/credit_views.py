"""Dashboard pages of credits: a member's wallet (balance, history, redeem) and the admin's page (policy,
top-up or deduct, generate codes and export them). Writes go through the credit services; their refusals
are shown on the form that caused them. A batch's codes are sent once, as the CSV answering the POST
that made them (no-store), and never again."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import client_ip, in_org_time_zone, permission_required
from accounts.errors import ApplicationError
from accounts.forms import form_status, service_error
from accounts.permissions import Perm
from accounts.tenancy import scoped
from billing import credits
from billing.credit_codes import codes_csv, codes_status_csv, redemption_code_redeem, redemption_codes_generate
from billing.credit_forms import CodeGenerateForm, CreditAdjustForm, CreditPolicyForm, RedeemForm
from billing.credit_grants import credit_policy_get, credit_policy_set
from billing.credit_models import CreditAccount, RedemptionCode
from billing.money import Money

HISTORY_SIZE = 100
CODES_SHOWN = 50


def _wallet_page(request, *, redeem_form=None, status=200):
    ctx = request.org_context
    account = credits.credit_account_get(organization=ctx.organization, user=ctx.user, create=False) if ctx.user else None
    balance = credits.credit_balance(account=account) if account else 0
    context = {
        "nav_section": "wallet",
        "balance": Money(balance, ctx.organization.currency),
        "entries": list(account.entries.all()[:HISTORY_SIZE]) if account else [],
        "currency": ctx.organization.currency,
        "redeem_form": redeem_form or RedeemForm(),
    }
    return render(request, "billing/wallet.html", context, status=status)


@require_GET
@permission_required(Perm.VIEW_OWN_USAGE)
@in_org_time_zone
def wallet(request):
    return _wallet_page(request)


@require_POST
@permission_required(Perm.VIEW_OWN_USAGE)
@in_org_time_zone
def wallet_redeem(request):
    form = RedeemForm(request.POST)
    if form.is_valid():
        try:
            entry = redemption_code_redeem(actor=request.org_context, code=form.cleaned_data["code"], ip=client_ip(request))
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            messages.success(request, _("%(amount)s added to your balance.") % {"amount": Money(entry.amount, request.org_context.organization.currency)})
            return redirect("wallet")
    return _wallet_page(request, redeem_form=form, status=form_status(form))


def _admin_page(request, *, policy_form=None, adjust_form=None, codes_form=None, status=200):
    org = request.org_context.organization
    accounts = list(scoped(CreditAccount, org).select_related("user", "team", "key").order_by("scope", "id"))
    balances = credits.credit_balances(account_ids=[a.pk for a in accounts])
    context = {
        "nav_section": "credits_admin",
        "currency": org.currency,
        "policy_form": policy_form or CreditPolicyForm.for_policy(credit_policy_get(organization=org)),
        "adjust_form": adjust_form or CreditAdjustForm(organization=org),
        "codes_form": codes_form or CodeGenerateForm(),
        "accounts": [(a, Money(balances[a.pk], org.currency)) for a in accounts],
        "codes": list(scoped(RedemptionCode, org).select_related("redeemed_by")[:CODES_SHOWN]),
    }
    return render(request, "billing/credits_admin.html", context, status=status)


@require_GET
@permission_required(Perm.MANAGE_BUDGETS)
@in_org_time_zone
def credits_admin(request):
    return _admin_page(request)


@require_POST
@permission_required(Perm.MANAGE_BUDGETS)
@in_org_time_zone
def credit_policy_save(request):
    org = request.org_context.organization
    form = CreditPolicyForm.for_policy(credit_policy_get(organization=org), data=request.POST)
    if form.is_valid():
        try:
            credit_policy_set(actor=request.org_context, ip=client_ip(request), **form.cleaned_data)
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            messages.success(request, _("Credit policy saved."))
            return redirect("credits_admin")
    return _admin_page(request, policy_form=form, status=form_status(form))


@require_POST
@permission_required(Perm.MANAGE_BUDGETS)
@in_org_time_zone
def credit_adjust(request):
    ctx = request.org_context
    form = CreditAdjustForm(request.POST, organization=ctx.organization)
    if form.is_valid():
        data = form.cleaned_data
        try:
            credits.check_amount(data["amount"])
            account = credits.credit_account_get(organization=ctx.organization, create=data["action"] == "topup", **form.holder_kwargs())
            if account is None:
                raise ApplicationError(_("This balance is empty: nothing to deduct."), field="amount")
            change = credits.credit_topup if data["action"] == "topup" else credits.credit_deduct
            change(actor=ctx, account=account, amount=data["amount"], reason=data["reason"], ip=client_ip(request))
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            messages.success(request, _("Balance of %(holder)s changed.") % {"holder": account})
            return redirect("credits_admin")
    return _admin_page(request, adjust_form=form, status=form_status(form))


@require_POST
@permission_required(Perm.MANAGE_BUDGETS)
@in_org_time_zone
def credit_codes_generate(request):
    ctx = request.org_context
    form = CodeGenerateForm(request.POST)
    if form.is_valid():
        try:
            batch, pairs = redemption_codes_generate(actor=ctx, ip=client_ip(request), **form.cleaned_data)
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            return _csv(codes_csv(pairs, currency=ctx.organization.currency), f"codes-{batch}.csv")
    return _admin_page(request, codes_form=form, status=form_status(form))


@require_GET
@permission_required(Perm.MANAGE_BUDGETS)
def credit_codes_export(request):
    codes = scoped(RedemptionCode, request.org_context.organization).select_related("redeemed_by")
    return _csv(codes_status_csv(codes), "redemption-codes.csv")


def _csv(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
