"""Dashboard pages of billing: overview, usage explorer, budgets and alerts, cost estimator, playground.

Summaries and charts come from the rollups (`billing.dashboard`); only the request log, one request's
detail and the CSV export read the ledger, always bounded by organization and time. Writes go through
billing.services and billing.alerts, whose refusals (ApplicationError) are shown on the form that caused
them. Objects are read through `get_scoped_or_404`, so another organization's budget, channel or request
is a 404, and a member (view_own_usage without view_usage) only ever sees their own keys' requests.

A webhook's signing secret is rendered straight into the response of the POST that made it (create or
rotate) with Cache-Control: no-store; it is never put in the session, a message or a URL. The playground
never sees a key's secret at all: the browser calls /v1 itself (static/js/billing.js).
"""

import csv
import zoneinfo

from django.contrib import messages
from django.core.handlers.asgi import ASGIRequest
from django.db.models import F
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import client_ip, in_org_time_zone, org_required, permission_required
from accounts.errors import ApplicationError
from accounts.forms import form_status, service_error
from accounts.models import Team, User
from accounts.permissions import Perm
from accounts.tenancy import get_scoped_or_404, scoped
from billing import alerts, dashboard, estimator, services
from billing.api.serializers import money_text
from billing.dashboard import Money
from billing.forms import AlertChannelCreateForm, AlertChannelUpdateForm, BudgetCreateForm, BudgetUpdateForm, EstimateForm, UsageFilterForm
from billing.models import AlertChannel, AlertDelivery, Budget, UsageEvent
from billing.savings import period_savings
from config.body_limit import accepts_body
from keys.models import Deployment, Model, VirtualKey

EXPORT_CHUNK = 2000
DELIVERY_PAGE_SIZE = 25


def _forbidden(request):
    return render(request, "accounts/forbidden.html", status=403)


# --- Overview ---------------------------------------------------------------------------------------------


@org_required
@in_org_time_zone
def overview(request):
    """The organization's spend at a glance (view_usage), or a member's own keys, budgets and usage."""
    ctx = request.org_context
    org = ctx.organization
    now = timezone.now()
    if ctx.can(Perm.VIEW_USAGE):
        budgets = list(dashboard.budget_list(organization=org))
        data = dashboard.overview(organization=org, now=now)
        context = {
            "full": True,
            "data": data,
            "data_key_ids": None,
            "budgets": dashboard.budget_statuses(budgets, organization=org, now=now, month_groups=data.groups),
        }
    elif ctx.can(Perm.VIEW_OWN_USAGE) and ctx.user is not None:
        keys = list(
            VirtualKey.objects.filter(organization=org, user=ctx.user).select_related("team")
            .order_by(F("revoked_at").asc(nulls_first=True), "name", "id")  # active keys first
        )
        key_ids = [key.pk for key in keys]
        budgets = list(dashboard.budgets_visible_to(ctx))
        context = {
            "full": False,
            "keys": keys,
            "data": dashboard.overview(organization=org, now=now, key_ids=key_ids),
            "data_key_ids": key_ids,
            "budgets": dashboard.budget_statuses(budgets, organization=org, now=now),
        }
    else:
        return _forbidden(request)
    data = context["data"]
    context["savings"] = period_savings(
        organization=org, start=data.period_start, end=data.period_end, key_ids=None if context["full"] else context["data_key_ids"])
    context["savings_money"] = {name: Money(getattr(context["savings"], name).amount, org.currency) for name in ("cache", "sandbox", "downgrades")}
    context["savings_total"] = Money(context["savings"].total, org.currency)
    context.update(nav_section="overview", now=now)
    return render(request, "billing/overview.html", context)


# --- Usage explorer -------------------------------------------------------------------------------------


def _usage_filters(request):
    ctx = request.org_context
    form = UsageFilterForm(request.GET or None, org_context=ctx, now=timezone.now())
    return form, form.filters(), dashboard.own_key_ids(ctx)


@require_GET
@permission_required(Perm.VIEW_OWN_USAGE)
@in_org_time_zone
def usage(request):
    ctx = request.org_context
    org = ctx.organization
    form, filters, key_ids = _usage_filters(request)
    summary = dashboard.usage_summary(
        organization=org, since=filters["since"], until=filters["until"], filters=filters, key_ids=key_ids,
        time_zone=zoneinfo.ZoneInfo(org.time_zone),
    )
    page = dashboard.log_page(
        dashboard.request_log(organization=org, filters=filters, key_ids=key_ids), page=request.GET.get("page"),
        after=request.GET.get("after"), before=request.GET.get("before"),
    )
    names = dashboard.names_for(organization=org, key_ids=[e.key_id for e in page.rows])
    rows = [{"event": e, "key_name": names["keys"].get(e.key_id), "cost": Money(e.cost_display, org.currency),
             "would_have_cost": Money(e.would_have_cost, org.currency) if e.would_have_cost is not None and (e.cache_hit or e.sandbox) else None}
            for e in page.rows]
    query = request.GET.copy()
    for name in ("page", "after", "before"):
        query.pop(name, None)
    context = {
        "nav_section": "usage",
        "form": form,
        "filters": filters,
        "summary": summary,
        "page": page,
        "rows": rows,
        "query": query.urlencode(),
        "own_only": key_ids is not None,
    }
    return render(request, "billing/usage.html", context)


def _visible_events(request):
    key_ids = dashboard.own_key_ids(request.org_context)
    events = UsageEvent.objects.all()
    return events if key_ids is None else events.filter(key_id__in=key_ids)


@require_GET
@permission_required(Perm.VIEW_OWN_USAGE)
@in_org_time_zone
def usage_event(request, pk):
    """One request: tokens, cost and how it was priced, attempts. The ledger holds no prompt or answer."""
    org = request.org_context.organization
    event = get_scoped_or_404(_visible_events(request), org, pk=pk)
    trail = [step for step in (event.attempt_trail or []) if isinstance(step, dict)]
    deployment_ids = {event.deployment_id, *(step.get("deployment") for step in trail)} - {None}
    deployments = {
        d.pk: str(d) for d in Deployment.objects.filter(organization=org, pk__in=[i for i in deployment_ids if isinstance(i, int)]).select_related("credential")
    }
    names = dashboard.names_for(organization=org, key_ids=[event.key_id], team_ids=[event.team_id], user_ids=[event.user_id])
    context = {
        "nav_section": "usage",
        "event": event,
        "key_name": names["keys"].get(event.key_id),
        "team_name": names["teams"].get(event.team_id),
        "user_email": names["users"].get(event.user_id),
        "deployment_name": deployments.get(event.deployment_id),
        "trail": [{**step, "deployment_name": deployments.get(step.get("deployment"))} for step in trail],
        "cost": Money(event.cost, event.currency) if event.cost is not None else None,
        "cost_display": Money(event.cost_display, org.currency),
        "would_have_cost": Money(event.would_have_cost, org.currency),
        "exchange_rate": money_text(event.exchange_rate),
        "currency": org.currency,
    }
    return render(request, "billing/usage_event.html", context)


CSV_HEADER = [
    "time", "request_id", "model", "provider", "upstream_model", "key_id", "key", "team_id", "team", "user_id", "user",
    "status", "error_type", "stream", "prompt_tokens", "cached_tokens", "completion_tokens", "usage_source", "cost",
    "cost_currency", "exchange_rate", "cost_display", "display_currency", "attempts", "latency_ms", "ttft_ms", "downgraded_from",
    "cache_hit", "sandbox", "would_have_cost",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Excel reads a CSV without a byte order mark in the legacy code page, which garbles Chinese names.
UTF8_BOM = "\ufeff"


def _cell(value) -> str:
    """A spreadsheet must not run a name as a formula (CSV injection): such text gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    def write(self, value):
        return value


def _csv_line(writer, event: UsageEvent, names: dict, tz, currency: str) -> str:
    return writer.writerow([
        event.created_at.astimezone(tz).isoformat(), event.request_id, _cell(event.model_name), _cell(event.provider),
        _cell(event.upstream_model), event.key_id or "", _cell(names["keys"].get(event.key_id, "")), event.team_id or "",
        _cell(names["teams"].get(event.team_id, "")), event.user_id or "", _cell(names["users"].get(event.user_id, "")),
        event.status_code, _cell(event.error_type), "true" if event.stream else "false", event.prompt_tokens,
        event.cached_tokens, event.completion_tokens, event.usage_source, money_text(event.cost) or "", event.currency,
        money_text(event.exchange_rate) or "", money_text(event.cost_display) or "", currency, event.attempts,
        event.latency_ms, "" if event.ttft_ms is None else event.ttft_ms, _cell(event.downgraded_from),
        "true" if event.cache_hit else "false", "true" if event.sandbox else "false", money_text(event.would_have_cost) or "",
    ])


def _csv_lines(events, names, tz, currency):
    writer = csv.writer(_Echo())
    yield UTF8_BOM + writer.writerow(CSV_HEADER)
    for event in events.iterator(chunk_size=EXPORT_CHUNK):
        yield _csv_line(writer, event, names, tz, currency)


async def _csv_lines_async(events, names, tz, currency):
    # Under ASGI a synchronous iterator would be read in full before the first byte is sent.
    writer = csv.writer(_Echo())
    yield UTF8_BOM + writer.writerow(CSV_HEADER)
    async for event in events.aiterator(chunk_size=EXPORT_CHUNK):
        yield _csv_line(writer, event, names, tz, currency)


def _export_names(org) -> dict:
    """Every key, team and member name of the organization, read once before streaming."""
    return {
        "keys": dict(VirtualKey.objects.filter(organization=org).values_list("pk", "name")),
        "teams": dict(Team.objects.filter(organization=org).values_list("pk", "name")),
        "users": dict(User.objects.filter(memberships__organization=org).values_list("pk", "email")),
    }


@require_GET
@permission_required(Perm.VIEW_OWN_USAGE)
def usage_export(request):
    """The filtered request log as CSV (UTF-8 with a BOM, for Excel), streamed row by row from a server-side cursor.

    Under ASGI the rows come from an async iterator (`aiterator`): Django reads a synchronous iterator in
    full before sending the first byte there, which would hold the whole export in memory.
    """
    org = request.org_context.organization
    _form, filters, key_ids = _usage_filters(request)
    events = dashboard.request_log(organization=org, filters=filters, key_ids=key_ids)
    names, tz = _export_names(org), zoneinfo.ZoneInfo(org.time_zone)
    lines = (_csv_lines_async if isinstance(request, ASGIRequest) else _csv_lines)(events, names, tz, org.currency)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().astimezone(tz).strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="usage-{org.slug}-{stamp}.csv"'
    add_never_cache_headers(response)
    return response


@require_GET
@permission_required(Perm.VIEW_OWN_USAGE)
def usage_cost(request):
    """The ledger's record of one request id (for the playground), once the ledger has it: {"found": false} until then."""
    org = request.org_context.organization
    request_id = request.GET.get("request_id", "")[:64]
    event = scoped(_visible_events(request), org).filter(request_id=request_id).first() if request_id else None
    if event is None:
        return JsonResponse({"found": False})
    return JsonResponse({
        "found": True,
        "request_id": event.request_id,
        "cost": money_text(event.cost_display),
        "cost_text": str(Money(event.cost_display, org.currency)),
        "currency": org.currency,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "usage_source": event.usage_source,
        "status": event.status_code,
        "url": reverse("usage_event", args=[event.pk]),
    })


# --- Budgets and alerts ----------------------------------------------------------------------------------


def _budgets_page(request, *, budget_form=None, channel_form=None, status=200):
    ctx = request.org_context
    org = ctx.organization
    can_manage = ctx.can(Perm.MANAGE_BUDGETS)
    now = timezone.now()
    statuses = dashboard.budget_statuses(list(dashboard.budgets_visible_to(ctx)), organization=org, now=now)
    channels = [{"channel": c, "target": dashboard.shown_destination(c)} for c in dashboard.alert_channels_visible_to(ctx)]
    deliveries = dashboard.alert_deliveries_visible_to(ctx)
    context = {
        "nav_section": "budgets",
        "budgets": statuses,
        "channels": channels,
        "deliveries": dashboard.log_page(deliveries, page=request.GET.get("deliveries"), size=DELIVERY_PAGE_SIZE),
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
    budget = get_scoped_or_404(dashboard.budget_list(organization=ctx.organization), ctx.organization, pk=pk)
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
    status = dashboard.budget_statuses([budget], organization=ctx.organization, now=timezone.now())[0]
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


# --- Cost estimator and playground --------------------------------------------------------------------------


def _estimate_rows(result, currency: str) -> list[dict]:
    rows = []
    cheapest = min((m.main.cost_display for m in result.models if m.main and m.main.cost_display is not None), default=None)
    for model in result.models:
        main = model.main
        rows.append({
            "model": model.model,
            "input_tokens": model.input_tokens,
            "output_tokens": model.output_tokens,
            "deployment": main.name if main else None,
            "cost": Money(main.cost, main.currency) if main and main.cost is not None else None,
            "exchange_rate": money_text(main.exchange_rate) if main and main.currency and main.currency != currency else None,
            "price_currency": main.currency if main else "",
            "cost_display": Money(main.cost_display, currency) if main and main.cost_display is not None else None,
            "cheapest": main is not None and main.cost_display is not None and main.cost_display == cheapest,
            "missing": model.missing,
            "multiplier": money_text(main.window_multiplier) if main and main.window_multiplier not in (None, 1) else None,
        })
    return rows


@accepts_body(estimator.MAX_REQUEST_BYTES)
@require_http_methods(["GET", "POST"])
@permission_required(Perm.VIEW_ORG)
@in_org_time_zone
def estimator_page(request):
    org = request.org_context.organization
    form = EstimateForm(request.POST or None, request.FILES or None, organization=org)
    result = None
    if request.method == "POST" and form.is_valid():
        try:
            result = estimator.estimate_cost(organization=org, **form.estimator_kwargs())
        except ApplicationError as exc:
            service_error(form, exc)
    context = {
        "nav_section": "estimator",
        "form": form,
        "result": result,
        "rows": _estimate_rows(result, org.currency) if result else [],
        "currency": org.currency,
    }
    return render(request, "billing/estimator.html", context, status=form_status(form) if form.errors else 200)


@require_GET
@permission_required(Perm.MANAGE_OWN_KEYS)
def playground(request):
    """Two models side by side. The page's script calls /v1 from the browser with a key the user pastes;
    the secret never reaches this view, so it cannot be stored, logged or echoed here."""
    ctx = request.org_context
    names = list(Model.objects.filter(organization=ctx.organization, is_active=True).order_by("name").values_list("name", flat=True))
    keys = VirtualKey.objects.filter(organization=ctx.organization, user=ctx.user, revoked_at=None).order_by("name") if ctx.user else []
    context = {
        "nav_section": "playground",
        "model_names": names,
        "second_model": names[1] if len(names) > 1 else (names[0] if names else ""),
        "own_keys": keys,
        "api_url": "/v1/chat/completions",
    }
    return render(request, "billing/playground.html", context)
