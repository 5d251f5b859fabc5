"""Billing's part of the key pages (keys.extensions.KeyBilling): a key's spend this period, what its own
budget leaves, and the budget fields of the key form, saved through `billing.services.key_budget_set`.

Spend comes from the rollups through `billing.selectors.key_spend`: a page of keys costs one query for their
budgets and one per kind of period in use, not a query per key.
"""

from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.permissions import Perm
from billing import selectors, services
from billing.models import Budget
from billing.money import Money
from billing.selectors import warning_threshold

PERIOD_LABELS = {
    Budget.Period.DAY: _("today"),
    Budget.Period.WEEK: _("this week"),
    Budget.Period.MONTH: _("this month"),
    Budget.Period.TOTAL: _("in total"),
}


@dataclass(frozen=True)
class KeySpendView:
    spent: Money
    remaining: Money | None
    amount: Money | None
    percent: Decimal | None
    level: str  # "ok", "warn", "over", or "" without a budget
    period_label: str
    budget: Budget | None

    @property
    def bar_value(self) -> int:
        return int(min(self.percent or Decimal(0), Decimal(100)))


class KeyBudgetForm(forms.Form):
    """The key's own budget on the key form: an amount (empty: none), its period, hard or soft."""

    amount = forms.DecimalField(
        label=_("Budget"), required=False, max_digits=20, decimal_places=6,  # <= 0: clean_amount says why
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
    )
    period = forms.ChoiceField(label=_("Budget period"), choices=Budget.Period.choices, initial=Budget.Period.MONTH, required=False)
    hard = forms.TypedChoiceField(
        label=_("When the budget is spent"), coerce=lambda value: value == "hard", initial="hard", required=False, empty_value=True,
        choices=[("hard", _("Refuse requests (hard limit)")), ("soft", _("Only alert (soft limit)"))],
    )

    def __init__(self, *args, organization, **kwargs):
        kwargs.setdefault("prefix", "budget")  # beside the key's own fields in one <form>
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = _("Budget (%(currency)s)") % {"currency": organization.currency}
        self.fields["amount"].help_text = _("This key's own spending limit per period. Empty: none (other budgets still apply).")

    @property
    def submitted(self) -> bool:
        """Whether the request carried the budget fields at all (a form without them leaves the budget alone)."""
        return self.is_bound and self.add_prefix("amount") in self.data

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount is not None and amount <= 0:
            raise forms.ValidationError(_("Enter a positive amount, or leave it empty for no budget."))
        return amount


class KeyBudgets:
    """The implementation billing registers for the key pages."""

    def spend(self, *, organization, key_ids: list[int]) -> dict[int, KeySpendView]:
        currency = organization.currency
        views = {}
        for key_id, spend in selectors.key_spend(organization=organization, key_ids=key_ids).items():
            budget = spend.budget
            level = ""
            if budget is not None:
                level = "over" if spend.percent >= 100 else "warn" if spend.percent >= warning_threshold(budget.thresholds) else "ok"
            views[key_id] = KeySpendView(
                spent=Money(spend.spent, currency),
                remaining=Money(spend.remaining, currency) if budget else None,
                amount=Money(budget.amount, currency) if budget else None,
                percent=spend.percent, level=level, period_label=str(PERIOD_LABELS[spend.period]), budget=budget,
            )
        return views

    def budget_form(self, *, org_context, key=None, data=None):
        if not org_context.can(Perm.MANAGE_BUDGETS):
            return None  # the role matrix: budgets are set by those who manage them; others see them on the page
        initial = {}
        budget = selectors.key_budgets(organization=org_context.organization, key_ids=[key.pk]).get(key.pk) if key else None
        if budget is not None:
            initial = {"amount": budget.amount.normalize(), "period": budget.period, "hard": "hard" if budget.hard else "soft"}
        return KeyBudgetForm(data, initial=initial, organization=org_context.organization)

    def budget_save(self, *, org_context, key, form, ip=None) -> None:
        if not form.submitted:
            return
        data = form.cleaned_data
        services.key_budget_set(
            actor=org_context, key=key, amount=data.get("amount"), period=data.get("period") or Budget.Period.MONTH,
            hard=data.get("hard", True), ip=ip,
        )
