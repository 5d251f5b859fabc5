"""Budgets and alert channels: the budgets page (bars, channels, the delivery log), and their forms.

Writes go through billing.services and billing.alerts, whose refusals (ApplicationError) are shown on the form
that caused them. Objects are read through `get_scoped_or_404`, so another organization's budget or channel is
a 404. A webhook's signing secret is rendered straight into the response of the POST that made it (create or
rotate) with Cache-Control: no-store; it is never put in the session, a message or a URL.
"""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import client_ip, in_org_time_zone, permission_required
from accounts.errors import ApplicationError
from accounts.forms import form_status, service_error
from accounts.permissions import Perm
from accounts.tenancy import get_scoped_or_404
from billing import alerts, selectors, services
from billing.forms import AlertChannelCreateForm, AlertChannelUpdateForm, BudgetCreateForm, BudgetUpdateForm
from billing.models import AlertChannel, AlertDelivery, Budget

DELIVERY_PAGE_SIZE = 25


def _budgets_page(request, *, budget_form=None, channel_form=None, status=200):
    ctx = request.org_context
    org = ctx.organization
    can_manage = ctx.can(Perm.MANAGE_BUDGETS)
    now = timezone.now()
    statuses = selectors.budget_statuses(list(selectors.budgets_visible_to(ctx)), organization=org, now=now)
    channels = [{"channel": c, "target": selectors.shown_destination(c)} for c in selectors.alert_channels_visible_to(ctx)]
    deliveries = selectors.alert_deliveries_visible_to(ctx)
    context = {
        "nav_section": "budgets",
        "budgets": statuses,
        "channels": channels,
        "deliveries": selectors.log_page(deliveries, page=request.GET.get("deliveries"), size=DELIVERY_PAGE_SIZE),
        "can_manage": can_manage,
        "currency": org.currency,
    }
    if can_manage:
        context["budget_form"] = budget_form or BudgetCreateForm(organization=org)
        context["channel_form"] = channel_form or AlertChannelCreateForm()
    return render(request, "billing/budgets.html", context, status=status)


@require_GET
@permission_required(Perm.VIEW_ORG)
@in_org_time_zone
def budgets(request):
    return _budgets_page(request)


@require_POST
@permission_required(Perm.MANAGE_BUDGETS)
@in_org_time_zone
def budget_create(request):
    ctx = request.org_context
    form = BudgetCreateForm(request.POST, organization=ctx.organization)
    if form.is_valid():
        try:
            budget = services.budget_create(actor=ctx, ip=client_ip(request), **form.service_kwargs())
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            messages.success(request, _("Budget %(name)s created.") % {"name": budget})
            return redirect("budgets")
    return _budgets_page(request, budget_form=form, status=form_status(form))


@require_http_methods(["GET", "POST"])
@permission_required(Perm.MANAGE_BUDGETS)
@in_org_time_zone
def budget_edit(request, pk):
    ctx = request.org_context
    budget = get_scoped_or_404(selectors.budget_list(organization=ctx.organization), ctx.organization, pk=pk)
    form = BudgetUpdateForm.for_budget(budget, data=request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.budget_update(actor=ctx, budget=budget, ip=client_ip(request), **form.cleaned_data)
        except ApplicationError as exc:
            budget.refresh_from_db()  # the service may have set some fields before refusing
            service_error(form, exc)
        else:
            messages.success(request, _("Budget %(name)s saved.") % {"name": budget})
            return redirect("budgets")
    status = selectors.budget_statuses([budget], organization=ctx.organization, now=timezone.now())[0]
    context = {"nav_section": "budgets", "budget": budget, "status": status, "form": form}
    return render(request, "billing/budget_edit.html", context, status=form_status(form) if form.errors else 200)


@require_POST
@permission_required(Perm.MANAGE_BUDGETS)
def budget_delete(request, pk):
    ctx = request.org_context
    budget = get_scoped_or_404(Budget, ctx.organization, pk=pk)
    name = str(budget)
    services.budget_delete(actor=ctx, budget=budget, ip=client_ip(request))
    messages.success(request, _("Budget %(name)s deleted.") % {"name": name})
    return redirect("budgets")


def _secret_page(request, *, channel, secret, rotated=False):
    context = {"nav_section": "budgets", "channel": channel, "secret": secret, "rotated": rotated}
    response = render(request, "billing/channel_secret.html", context)
    add_never_cache_headers(response)  # no-store: the back button or a shared cache must not bring it back
    return response


@require_POST
@permission_required(Perm.MANAGE_BUDGETS)
@in_org_time_zone
def channel_create(request):
    ctx = request.org_context
    form = AlertChannelCreateForm(request.POST)
    if form.is_valid():
        try:
            channel, secret = alerts.alert_channel_create(actor=ctx, ip=client_ip(request), **form.cleaned_data)
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            if secret:
                return _secret_page(request, channel=channel, secret=secret)
            messages.success(request, _("Alert channel %(name)s added.") % {"name": channel.name})
            return redirect("budgets")
    return _budgets_page(request, channel_form=form, status=form_status(form))


@require_http_methods(["GET", "POST"])
@permission_required(Perm.MANAGE_BUDGETS)
@in_org_time_zone
def channel_edit(request, pk):
    ctx = request.org_context
    channel = get_scoped_or_404(AlertChannel, ctx.organization, pk=pk)
    form = AlertChannelUpdateForm.for_channel(channel, data=request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            alerts.alert_channel_update(actor=ctx, channel=channel, ip=client_ip(request), **form.service_kwargs())
        except ApplicationError as exc:
            channel.refresh_from_db()
            service_error(form, exc)
        else:
            messages.success(request, _("Alert channel %(name)s saved.") % {"name": channel.name})
            return redirect("budgets")
    context = {"nav_section": "budgets", "channel": channel, "target": channel.destination, "form": form}
    return render(request, "billing/channel_edit.html", context, status=form_status(form) if form.errors else 200)


@require_POST
@permission_required(Perm.MANAGE_BUDGETS)
def channel_delete(request, pk):
    ctx = request.org_context
    channel = get_scoped_or_404(AlertChannel, ctx.organization, pk=pk)
    name = channel.name
    alerts.alert_channel_delete(actor=ctx, channel=channel, ip=client_ip(request))
    messages.success(request, _("Alert channel %(name)s deleted.") % {"name": name})
    return redirect("budgets")


@require_POST
@permission_required(Perm.MANAGE_BUDGETS)
@in_org_time_zone
def channel_rotate(request, pk):
    ctx = request.org_context
    channel = get_scoped_or_404(AlertChannel, ctx.organization, pk=pk)
    try:
        channel, secret = alerts.alert_channel_rotate_secret(actor=ctx, channel=channel, ip=client_ip(request))
    except ApplicationError as exc:  # not a webhook
        messages.error(request, exc.message)
        return redirect("budgets")
    return _secret_page(request, channel=channel, secret=secret, rotated=True)


@require_POST
@permission_required(Perm.MANAGE_BUDGETS)
def channel_test(request, pk):
    ctx = request.org_context
    channel = get_scoped_or_404(AlertChannel, ctx.organization, pk=pk)
    delivery = alerts.alert_send_test(actor=ctx, channel=channel, ip=client_ip(request))
    if delivery.status == AlertDelivery.Status.SENT:
        messages.success(request, _("Test alert sent to %(name)s.") % {"name": channel.name})
    else:
        detail = delivery.last_error or (str(delivery.last_status_code) if delivery.last_status_code else "")
        messages.error(request, _("The test alert to %(name)s failed: %(error)s") % {"name": channel.name, "error": detail or _("no answer")})
    return redirect(reverse("budgets") + "#deliveries")
