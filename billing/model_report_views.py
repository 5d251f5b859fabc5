"""The A/B comparison of a model's variants (its deployments) over a time range: usage read from the
ledger, so it lives with billing; the page sits under the model's URL."""

from decimal import ROUND_HALF_UP, Decimal

from django.shortcuts import render
from django.utils import formats
from django.utils.translation import gettext as _, gettext_lazy

from accounts.decorators import in_org_time_zone, permission_required
from accounts.permissions import Perm
from accounts.tenancy import get_scoped_or_404
from billing.selectors import model_variant_report
from keys.forms import ReportRangeForm
from keys.models import Deployment, Model

# (field of model_variant_report, column heading, kind of number, whether lower is better for the difference)
REPORT_COLUMNS = [
    ("requests", gettext_lazy("Requests"), "count", None),
    ("error_rate", gettext_lazy("Error rate"), "percent", True),
    ("latency_p50_ms", gettext_lazy("p50 latency (ms)"), "count", True),
    ("latency_p95_ms", gettext_lazy("p95 latency (ms)"), "count", True),
    ("ttft_p50_ms", gettext_lazy("p50 time to first token (ms)"), "count", True),
    ("avg_prompt_tokens", gettext_lazy("Avg. prompt tokens"), "tokens", None),
    ("avg_completion_tokens", gettext_lazy("Avg. completion tokens"), "tokens", None),
    ("cost_per_request", gettext_lazy("Cost per request (%(currency)s)"), "money", True),
    ("cost_per_1k_tokens", gettext_lazy("Cost per 1k tokens (%(currency)s)"), "money", True),
]


def _rounded(value, kind: str) -> tuple[Decimal, int]:
    """Counts whole, tokens to 0.1, rates as a percentage to 0.1, money to 2, 4 or 6 places as it needs."""
    amount = Decimal(str(value))
    if kind == "percent":
        amount, places = amount * 100, 1
    elif kind == "money":
        places = 2 if not amount or abs(amount) >= 1 else (4 if abs(amount) >= Decimal("0.01") else 6)
    else:
        places = 0 if kind == "count" else 1
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP), places


def _number(value, kind: str) -> str:
    rounded, places = _rounded(value, kind)
    text = formats.number_format(rounded, places, use_l10n=True, force_grouping=True)
    return _("%(value)s%%") % {"value": text} if kind == "percent" else text


def _difference(value, kind: str, lower_is_better: bool) -> dict | None:
    """The difference to the first variant, signed, and whether it is better or worse."""
    if value is None:
        return None
    rounded, places = _rounded(value, kind)
    number = formats.number_format(abs(rounded), places, use_l10n=True, force_grouping=True)
    if rounded == 0:
        sign, tone = "±", "same"
    else:
        sign, tone = ("+" if rounded > 0 else "−"), ("better" if (rounded < 0) == lower_is_better else "worse")
    text = _("%(value)s pp") % {"value": sign + number} if kind == "percent" else sign + number  # percentage points
    return {"text": text, "raw": str(value), "tone": tone}


def _variant_label(variant, deployments) -> tuple[str, str]:
    """(name, detail) of a variant: its deployment's name, or why it has none."""
    deployment = deployments.get(variant["deployment_id"])
    if deployment is not None:
        return deployment.name or deployment.upstream_model, f"{deployment.credential.name} · {deployment.upstream_model}"
    if variant["deployment_id"] is None:
        return _("No deployment"), _("Refused before a deployment was chosen")
    return _("Deleted deployment #%(id)s") % {"id": variant["deployment_id"]}, variant["upstream_model"]


def _report_rows(report, deployments) -> list[dict]:
    rows = []
    for variant in report["variants"]:
        name, detail = _variant_label(variant, deployments)
        differences = variant.get("vs_first") or {}
        cells = []
        for field, _heading, kind, lower_is_better in REPORT_COLUMNS:
            value = variant[field]
            cells.append({
                "field": field,
                "raw": "" if value is None else str(value),
                "text": None if value is None else _number(value, kind),
                "difference": _difference(differences.get(field), kind, lower_is_better) if field in differences else None,
            })
        rows.append({"variant": variant, "name": name, "detail": detail, "cells": cells})
    return rows


def _chart_data(rows, *, currency: str) -> dict:
    """What static/js/report.js draws: one label per variant, numbers or null (no data)."""

    def numbers(field):
        return [None if row["variant"][field] is None else float(row["variant"][field]) for row in rows]

    return {
        "labels": [row["name"] for row in rows],
        "latency": {"p50": numbers("latency_p50_ms"), "p95": numbers("latency_p95_ms")},
        "cost": numbers("cost_per_1k_tokens"),
        "text": {
            "p50": _("p50 latency (ms)"),
            "p95": _("p95 latency (ms)"),
            "ms": _("Milliseconds"),
            "cost": _("Cost per 1k tokens (%(currency)s)") % {"currency": currency},
        },
    }


@permission_required(Perm.VIEW_USAGE)
@in_org_time_zone
def model_report(request, pk):
    """The A/B comparison of a model's variants (deployments) over a time range, as a table and two charts."""
    ctx = request.org_context
    org = ctx.organization
    model = get_scoped_or_404(Model, org, pk=pk)
    form = ReportRangeForm(request.GET or None, time_zone=org.time_zone)
    context = {
        "nav_section": "models", "model": model, "form": form, "report": None, "rows": [],
        "columns": [str(heading) % {"currency": org.currency} for _field, heading, _kind, _lower in REPORT_COLUMNS],
    }
    if form.is_bound and not form.is_valid():
        return render(request, "keys/model_report.html", context, status=400)
    since, until = form.bounds()
    report = model_variant_report(organization=org, model=model, since=since, until=until)
    ids = [v["deployment_id"] for v in report["variants"] if v["deployment_id"] is not None]
    deployments = {d.pk: d for d in Deployment.objects.filter(organization=org, pk__in=ids).select_related("credential")}
    rows = _report_rows(report, deployments)
    context.update({
        "report": report,
        "rows": rows,
        "baseline": rows[0] if rows else None,
        "chart": _chart_data(rows, currency=org.currency),
        "can_manage": ctx.can(Perm.MANAGE_PROVIDERS),
    })
    return render(request, "keys/model_report.html", context)
