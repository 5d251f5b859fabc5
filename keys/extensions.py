"""What the key pages show and save that a higher floor owns: a key's spend and its own budget.

Floors: core < accounts < keys < billing < relay, so the key pages cannot import billing. They ask this
interface instead, and billing registers its implementation when Django starts (`billing.apps.BillingConfig
.ready` → `billing.key_budgets.KeyBudgets`): the dependency points down, as the floors want, and the key
pages keep one place to ask. Without an implementation (billing not installed) the pages omit spend and
budget.
"""

from typing import Protocol


class KeyBilling(Protocol):
    def spend(self, *, organization, key_ids: list[int]) -> dict:
        """Per key id: an object with `spent`, `remaining`, `percent`, `level`, `period_label` and `budget`
        (what keys/_key_spend.html renders), in a fixed number of queries whatever the number of keys."""

    def budget_form(self, *, org_context, key=None, data=None):
        """The key form's budget fields (a Django form), or None when the caller may not set budgets."""

    def budget_save(self, *, org_context, key, form, ip=None) -> None:
        """Create, change or remove the key's own budget from a valid `budget_form`; refusals raise
        ApplicationError naming the field."""


_implementation: KeyBilling | None = None


def register(implementation: KeyBilling) -> None:
    global _implementation
    _implementation = implementation


def key_billing() -> KeyBilling | None:
    return _implementation
