"""The A/B report: a model's deployments side by side, from the ledger."""

import math
from datetime import datetime
from decimal import Decimal

from billing.models import UsageEvent
from keys.models import Deployment


def _percentile(values: list[int], fraction: float) -> int | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))]


def model_variant_report(*, organization, model, since: datetime, until: datetime) -> dict:
    """Per deployment of a model: volume, errors, latency, tokens and cost, with the difference to the first."""
    rows = (
        UsageEvent.objects.filter(organization=organization, model_name=model.name, created_at__gte=since, created_at__lt=until)
        .values_list("deployment_id", "status_code", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "cost_display")
        .order_by()
    )
    grouped: dict[int, list] = {}
    for row in rows.iterator(chunk_size=5000):
        grouped.setdefault(row[0], []).append(row)
    names = dict(Deployment.objects.filter(organization=organization, pk__in=[k for k in grouped if k]).values_list("pk", "upstream_model"))
    variants = []
    for deployment_id in sorted(grouped, key=lambda k: (k is None, k)):
        events = grouped[deployment_id]
        ok = [e for e in events if e[1] < 400]
        tokens = sum(e[4] + e[5] for e in ok)
        cost = sum((e[6] for e in ok if e[6] is not None), Decimal(0))
        variants.append({
            "deployment_id": deployment_id, "upstream_model": names.get(deployment_id, ""), "requests": len(events),
            "errors": len(events) - len(ok), "error_rate": round((len(events) - len(ok)) / len(events), 4),
            "latency_p50_ms": _percentile([e[2] for e in ok], 0.5), "latency_p95_ms": _percentile([e[2] for e in ok], 0.95),
            "ttft_p50_ms": _percentile([e[3] for e in ok if e[3] is not None], 0.5),
            "avg_prompt_tokens": round(sum(e[4] for e in ok) / len(ok), 2) if ok else None,
            "avg_completion_tokens": round(sum(e[5] for e in ok) / len(ok), 2) if ok else None,
            "cost_per_request": str(cost / len(ok)) if ok else None,
            "cost_per_1k_tokens": str(cost * 1000 / tokens) if tokens else None,
        })
    baseline = variants[0] if variants else None
    for variant in variants[1:]:
        variant["vs_first"] = {
            field: _difference(variant[field], baseline[field])
            for field in ("error_rate", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "cost_per_request", "cost_per_1k_tokens")
        }
    return {"model": model.name, "since": since, "until": until, "variants": variants}


def _difference(value, base):
    if value is None or base is None:
        return None
    return str(Decimal(str(value)) - Decimal(str(base)))
