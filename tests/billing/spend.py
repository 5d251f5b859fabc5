"""Spend at a known price through the real relay: shared by the budget and credit admission tests and
the counter tests, which start from the same ledger state before they make Redis lose or lower a counter."""

from decimal import Decimal

from django.db.models import Sum

from billing.models import UsageEvent
from tests.gateway import drain_usage, wait_for

# Output at 1000 USD per 1M tokens: the mock's 10-word answer costs exactly 0.01, as does max_tokens=10.
PER_REQUEST = Decimal("0.01")
MESSAGES = [{"role": "user", "content": "Hi"}]


def call(client, **kwargs):
    return client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=10, **kwargs)


def ledger_total(org):
    drain_usage()
    return UsageEvent.objects.filter(organization=org).aggregate(total=Sum("cost_display"))["total"] or Decimal(0)


def spend_recorded(gateway, calls: int = 3) -> Decimal:
    """`calls` admitted calls of 0.01, waited for until the ledger holds them; returns the ledger's total."""
    client = gateway.client()
    for _ in range(calls):
        call(client)
    expected = PER_REQUEST * calls
    assert wait_for(lambda: ledger_total(gateway.org) == expected)
    return expected
