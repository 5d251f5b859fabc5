"""The cost estimator and the playground. The playground never sees a key's secret at all: the browser calls
/v1 itself (static/js/billing.js)."""

from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.decorators import in_org_time_zone, permission_required
from accounts.errors import ApplicationError
from accounts.forms import form_status, service_error
from accounts.permissions import Perm
from billing import estimator
from billing.api.serializers import money_text
from billing.forms import EstimateForm
from billing.money import Money
from config.body_limit import accepts_body
from keys.models import Model, VirtualKey


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
