"""The usage explorer: totals and a spend chart (billing.selectors.usage_explorer_summary, the REST API's
summary), the request log a page at a time, one request's detail and the CSV export.

Only the request log, one request's detail and the export read the ledger, always bounded by organization and
time. A member (view_own_usage without view_usage) only ever sees their own keys' requests; another
organization's request is a 404.
"""

import csv
import zoneinfo

from django.core.handlers.asgi import ASGIRequest
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET

from accounts.decorators import in_org_time_zone, permission_required
from accounts.permissions import Perm
from accounts.tenancy import get_scoped_or_404, scoped
from billing import selectors
from billing.api.serializers import money_text
from billing.forms import UsageFilterForm
from billing.models import UsageEvent
from billing.money import Money

EXPORT_CHUNK = 2000


def _usage_filters(request):
    ctx = request.org_context
    form = UsageFilterForm(request.GET or None, org_context=ctx, now=timezone.now())
    return form, form.filters(), selectors.own_key_ids(ctx)


@require_GET
@permission_required(Perm.VIEW_OWN_USAGE)
@in_org_time_zone
def usage(request):
    ctx = request.org_context
    org = ctx.organization
    form, filters, key_ids = _usage_filters(request)
    summary = selectors.usage_explorer_summary(
        organization=org, since=filters["since"], until=filters["until"], filters=filters, key_ids=key_ids,
        time_zone=zoneinfo.ZoneInfo(org.time_zone),
    )
    page = selectors.log_page(
        selectors.request_log(organization=org, filters=filters, key_ids=key_ids), page=request.GET.get("page"),
        after=request.GET.get("after"), before=request.GET.get("before"),
    )
    names = selectors.names_for(organization=org, key_ids=[e.key_id for e in page.rows])
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
    return selectors.events_visible_to(request.org_context)


@require_GET
@permission_required(Perm.VIEW_OWN_USAGE)
@in_org_time_zone
def usage_event(request, pk):
    """One request: tokens, cost and how it was priced, attempts. The ledger holds no prompt or answer."""
    org = request.org_context.organization
    event = get_scoped_or_404(_visible_events(request), org, pk=pk)
    trail = [step for step in (event.attempt_trail or []) if isinstance(step, dict)]
    deployment_ids = {event.deployment_id, *(step.get("deployment") for step in trail)} - {None}
    deployments = selectors.deployment_names(organization=org, ids=[i for i in deployment_ids if isinstance(i, int)])
    names = selectors.names_for(organization=org, key_ids=[event.key_id], team_ids=[event.team_id], user_ids=[event.user_id])
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


@require_GET
@permission_required(Perm.VIEW_OWN_USAGE)
def usage_export(request):
    """The filtered request log as CSV (UTF-8 with a BOM, for Excel), streamed row by row from a server-side cursor.

    Under ASGI the rows come from an async iterator (`aiterator`): Django reads a synchronous iterator in
    full before sending the first byte there, which would hold the whole export in memory.
    """
    org = request.org_context.organization
    _form, filters, key_ids = _usage_filters(request)
    events = selectors.request_log(organization=org, filters=filters, key_ids=key_ids)
    names, tz = selectors.names_all(organization=org), zoneinfo.ZoneInfo(org.time_zone)
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
