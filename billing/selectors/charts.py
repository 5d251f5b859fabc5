"""Chart.js data for the stacked spend charts of the overview and the usage explorer."""

from decimal import Decimal

from django.utils.translation import gettext as _

from billing.money import chart_number
from billing.selectors.rankings import model_label

CHART_MODELS = 7  # models drawn on their own in stacked charts; the rest is "Other"


def stacked_by_model(points: dict[tuple, Decimal], buckets: list, label_of, *, currency: str) -> dict:
    """A stacked bar chart of `points` ((bucket, model) -> cost): the biggest models on their own, the rest as "Other"."""
    per_model: dict[str, Decimal] = {}
    for (_bucket, model), value in points.items():
        per_model[model] = per_model.get(model, Decimal(0)) + value
    ranked = sorted(per_model, key=lambda m: (-per_model[m], m))
    shown, rest = ranked[:CHART_MODELS], set(ranked[CHART_MODELS:])
    index = {bucket: i for i, bucket in enumerate(buckets)}
    series = {model: [0.0] * len(buckets) for model in shown}
    other = [0.0] * len(buckets)
    for (bucket, model), value in points.items():
        if bucket not in index:
            continue
        target = other if model in rest else series[model]
        target[index[bucket]] = round(target[index[bucket]] + chart_number(value), 6)
    datasets = [{"label": model_label(model), "data": series[model]} for model in shown]
    if rest:
        datasets.append({"label": _("Other models"), "data": other})
    return {"labels": [label_of(bucket) for bucket in buckets], "datasets": datasets, "currency": currency, "empty": not points}
