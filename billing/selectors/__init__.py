"""Reads for billing, one module per concern, shared by the dashboard pages, the REST API, the relay's read
model and the other apps (STYLE.md: selectors are the reads):

    ranges       UTC hours and days onto rollup rows; grouped sums      budgets      spend per period, visibility
    usage        the usage summary (explorer and /api/usage alike)      request_log  the ledger a page at a time
    overview     the month at a glance                                   savings      cache, sandbox, downgrades
    key_spend    a key's spend and own budget                            prices       price book, exchange rates
    alerts       channels and deliveries a role may see                  reports      the A/B report
    backlog      how far the ledger is behind                            rankings, charts: shared by the pages

Every name below is importable as `billing.selectors.<name>`.
"""

from billing.selectors.alerts import alert_channels_visible_to, alert_deliveries_visible_to, alert_delivery_get, shown_destination
from billing.selectors.backlog import usage_backlog_status
from billing.selectors.budgets import (
    BudgetStatus,
    budget_list,
    budget_reserved,
    budget_scope_filter,
    budget_spent,
    budget_spent_micros,
    budget_statuses,
    budgets_applying_to,
    budgets_visible_to,
    budgets_with_spend,
    warning_threshold,
)
from billing.selectors.charts import stacked_by_model
from billing.selectors.key_spend import KeySpend, key_budgets, key_spend
from billing.selectors.overview import Overview, daily_chart, forecast, overview
from billing.selectors.prices import (
    PricedModel,
    exchange_rate_list,
    exchange_rates_for,
    exchange_rates_mark_in_force,
    price_book,
    price_book_models,
    price_rank,
    price_visible,
    prices_for,
    prices_mark_in_force,
)
from billing.selectors.ranges import ceil_day, ceil_hour, floor_day, floor_hour, rollup_range_q, rollups
from billing.selectors.rankings import ENDPOINT_LABELS, Ranked, by_endpoint, endpoint_label, model_label
from billing.selectors.reports import model_variant_report
from billing.selectors.request_log import (
    STATUS_FILTERS,
    LogPage,
    deployment_names,
    events_visible_to,
    log_cursor,
    log_page,
    names_all,
    names_for,
    request_log,
    usage_events,
)
from billing.selectors.savings import Saving, Savings, period_savings
from billing.selectors.usage import GROUPS, group_labels, own_key_ids, usage_explorer_summary, usage_grouped, usage_summary

__all__ = [
    "ENDPOINT_LABELS", "GROUPS", "STATUS_FILTERS", "BudgetStatus", "KeySpend", "LogPage", "Overview", "PricedModel", "Ranked", "Saving",
    "Savings", "alert_channels_visible_to", "alert_deliveries_visible_to", "alert_delivery_get", "budget_list", "budget_reserved",
    "budget_scope_filter", "budget_spent", "budget_spent_micros", "budget_statuses", "budgets_applying_to", "budgets_visible_to",
    "budgets_with_spend", "by_endpoint", "ceil_day", "ceil_hour", "daily_chart", "deployment_names", "endpoint_label", "events_visible_to",
    "exchange_rate_list",
    "exchange_rates_for", "exchange_rates_mark_in_force", "floor_day", "floor_hour", "forecast", "group_labels", "key_budgets",
    "key_spend", "log_cursor", "log_page", "model_label", "model_variant_report", "names_all", "names_for", "overview", "own_key_ids",
    "period_savings", "price_book", "price_book_models", "price_rank", "price_visible", "prices_for", "prices_mark_in_force",
    "request_log", "rollup_range_q", "rollups", "shown_destination", "stacked_by_model", "usage_backlog_status", "usage_events",
    "usage_explorer_summary", "usage_grouped", "usage_summary", "warning_threshold",
]
