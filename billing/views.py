"""The overview page: the organization's month at a glance, or a member's own keys, budgets and usage.

Billing's other pages have a module each: usage_views (explorer, one request, CSV), budget_views (budgets
and alert channels), price_views, credit_views, model_report_views and tool_views (estimator, playground).
Every figure comes from `billing.selectors`, the same reads the REST API answers from.
"""

from django.db.models import F
from django.shortcuts import render
from django.utils import timezone

from accounts.decorators import in_org_time_zone, org_required
from accounts.permissions import Perm
from billing import selectors
from billing.money import Money
from keys.models import VirtualKey


def _forbidden(request):
    return render(request, "accounts/forbidden.html", status=403)


@org_required
@in_org_time_zone
def overview(request):
    """The organization's spend at a glance (view_usage), or a member's own keys, budgets and usage."""
    ctx = request.org_context
    org = ctx.organization
    now = timezone.now()
    if ctx.can(Perm.VIEW_USAGE):
        budgets = list(selectors.budget_list(organization=org))
        data = selectors.overview(organization=org, now=now)
        context = {
            "full": True,
            "data": data,
            "data_key_ids": None,
            "budgets": selectors.budget_statuses(budgets, organization=org, now=now, month_groups=data.groups),
        }
    elif ctx.can(Perm.VIEW_OWN_USAGE) and ctx.user is not None:
        keys = list(
            VirtualKey.objects.filter(organization=org, user=ctx.user).select_related("team")
            .order_by(F("revoked_at").asc(nulls_first=True), "name", "id")  # active keys first
        )
        key_ids = [key.pk for key in keys]
        budgets = list(selectors.budgets_visible_to(ctx))
        context = {
            "full": False,
            "keys": keys,
            "data": selectors.overview(organization=org, now=now, key_ids=key_ids),
            "data_key_ids": key_ids,
            "budgets": selectors.budget_statuses(budgets, organization=org, now=now),
        }
    else:
        return _forbidden(request)
    data = context["data"]
    context["savings"] = selectors.period_savings(
        organization=org, start=data.period_start, end=data.period_end, key_ids=None if context["full"] else context["data_key_ids"])
    context["savings_money"] = {name: Money(getattr(context["savings"], name).amount, org.currency) for name in ("cache", "sandbox", "downgrades")}
    context["savings_total"] = Money(context["savings"].total, org.currency)
    context.update(nav_section="overview", now=now)
    return render(request, "billing/overview.html", context)
