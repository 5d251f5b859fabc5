"""Rankings and labels shared by the overview, the usage explorer and the REST API: top spenders, spend per
endpoint, and the names the dashboard gives models and endpoints."""

from dataclasses import dataclass
from decimal import Decimal

from django.utils.translation import gettext as _, gettext_lazy

from billing.money import Money

TOP = 5


@dataclass
class Ranked:
    label: str
    cost: Money
    requests: int
    share: int  # percent of the period's spend, for a <meter>
    ident: object = None


def model_label(name: str) -> str:
    """A request refused before it named a usable model is in the ledger without one."""
    return name or "—"


# The relay's endpoints (relay.pipeline.ENDPOINTS, relay.messages.PATHS) as the dashboard names them.
ENDPOINT_LABELS = {
    "chat": gettext_lazy("Chat completions"), "completions": gettext_lazy("Completions"), "embeddings": gettext_lazy("Embeddings"),
    "rerank": gettext_lazy("Rerank"), "messages": gettext_lazy("Anthropic Messages"), "count_tokens": gettext_lazy("Token counting"),
    "responses": gettext_lazy("Responses"),
}


def endpoint_label(endpoint: str) -> str:
    """"" is usage rolled up before endpoints were (migration billing 0014) whose ledger rows were pruned."""
    return str(ENDPOINT_LABELS.get(endpoint, endpoint)) if endpoint else str(_("Not recorded"))


def ranked(rows, total: Decimal, currency: str, column: str, label_of) -> list[Ranked]:
    result = []
    for row in rows:
        cost = row["cost"] or Decimal(0)
        share = int((cost * 100 / total).to_integral_value()) if total else 0
        result.append(Ranked(label=label_of(row[column]), cost=Money(cost, currency), requests=row["requests"] or 0,
                             share=min(share, 100), ident=row[column]))
    return result


def top(groups: list[dict], column: str, limit: int | None = TOP) -> list[dict]:
    """The TOP values of `column` by cost, then requests, then the value itself."""
    by_value: dict = {}
    for group in groups:
        row = by_value.setdefault(group[column], {column: group[column], "cost": Decimal(0), "requests": 0})
        row["cost"] += group["cost"] or 0
        row["requests"] += group["requests"] or 0
    return sorted(by_value.values(), key=lambda row: (-row["cost"], -row["requests"], row[column]))[:limit]


def by_endpoint(groups: list[dict], total: Decimal, currency: str) -> list[Ranked]:
    """Spend and requests per endpoint, dearest first, from groups that carry an `endpoint`."""
    return ranked(top(groups, "endpoint", limit=None), total, currency, "endpoint", endpoint_label)
