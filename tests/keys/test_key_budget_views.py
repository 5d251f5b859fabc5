"""A key's spend this period and its own budget on the key pages, and the budget on the key form itself.

The budget is billing's (keys.extensions → billing.key_budgets): created, changed and removed through
billing.services, in the same transaction as the key; spend comes from the rollups in a fixed number of
queries however many keys the page lists.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLog, Role
from billing import ledger
from billing.models import Budget
from keys.models import VirtualKey
from tests.billing.factories import BudgetFactory, usage_record
from tests.keys.factories import VirtualKeyFactory

pytestmark = pytest.mark.django_db


def logged_in(client, user):
    client.force_login(user)
    return client


def spend(org, key, amount: str, *, at=None):
    ledger.usage_ingest([usage_record(organization=org, key=key, model_name="m", at=at or timezone.now(), cost_display=amount)])


def key_post(**fields) -> dict:
    data = {"name": "Batch", "rpm_limit": "60", "tpm_limit": "", "expires_at": "", "budget-amount": "", "budget-period": "month", "budget-hard": "hard"}
    data.update(fields)
    return data


def edit_post(key, **fields) -> dict:
    data = {"edit-name": key.name, "edit-rpm_limit": "", "edit-tpm_limit": "", "edit-expires_at": "",
            "budget-amount": "", "budget-period": "month", "budget-hard": "hard"}
    data.update(fields)
    return data


def row_of(html: str, name: str) -> str:
    start = html.index(f'data-key="{name}"')
    return html[start:html.index("</tr>", start)]


def test_list_shows_spend_this_period_and_what_the_budget_leaves(client, org, owner):
    capped = VirtualKeyFactory(organization=org, user=owner, name="Capped")
    free = VirtualKeyFactory(organization=org, user=owner, name="Free")
    BudgetFactory(organization=org, scope=Budget.Scope.KEY, key=capped, amount=Decimal("10"), period=Budget.Period.MONTH)
    spend(org, capped, "8.5")
    spend(org, free, "1.25")
    spend(org, free, "100", at=timezone.now() - timedelta(days=40))  # an earlier month
    html = logged_in(client, owner).get(reverse("keys")).content.decode()
    capped_row, free_row = row_of(html, "Capped"), row_of(html, "Free")
    assert "$8.50" in capped_row and "$1.50 left of $10.00" in capped_row and 'data-spend-level="warn"' in capped_row
    assert "$1.25" in free_row and "this month" in free_row and "no key budget" in free_row


def test_spend_follows_the_budget_period(client, org, owner):
    key = VirtualKeyFactory(organization=org, user=owner, name="Daily")
    BudgetFactory(organization=org, scope=Budget.Scope.KEY, key=key, amount=Decimal("2"), period=Budget.Period.DAY)
    spend(org, key, "3")
    spend(org, key, "5", at=timezone.now() - timedelta(days=2))
    html = logged_in(client, owner).get(reverse("key_detail", args=[key.pk])).content.decode()
    box = html[html.index('id="key-spend"'):][:1500]
    assert "$3.00" in box and "today" in box and "$0.00 left of $2.00" in box
    assert "limit reached" in box


def test_list_queries_do_not_grow_with_the_keys(client, org, owner):
    def add(n):
        for i in range(n):
            key = VirtualKeyFactory(organization=org, user=owner)
            BudgetFactory(organization=org, scope=Budget.Scope.KEY, key=key, amount=Decimal("5"),
                          period=[Budget.Period.MONTH, Budget.Period.WEEK, Budget.Period.DAY][i % 3])
            spend(org, key, "0.5")

    client = logged_in(client, owner)
    add(3)
    client.get(reverse("keys"))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("keys"))
    add(27)
    with CaptureQueriesContext(connection) as many:
        response = client.get(reverse("keys"))
    assert response.content.decode().count("left of") == 30
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def test_create_a_key_with_its_budget(client, org, admin_user):
    client = logged_in(client, admin_user)
    response = client.post(reverse("key_create"), key_post(**{"budget-amount": "25.5", "budget-period": "week", "budget-hard": "soft"}))
    assert response.status_code == 200 and "tg-" in response.content.decode()  # the secret page
    key = VirtualKey.objects.get(organization=org, name="Batch")
    assert key.rpm_limit == 60
    budget = Budget.objects.get(organization=org, scope=Budget.Scope.KEY, key=key)
    assert (budget.amount, budget.period, budget.hard) == (Decimal("25.5"), "week", False)
    assert AuditLog.objects.filter(organization=org, action="budget.create", target_id=str(budget.pk)).exists()


def test_a_refused_budget_leaves_no_key_behind(client, org, admin_user):
    client = logged_in(client, admin_user)
    for amount in ("-3", "0", "abc"):
        response = client.post(reverse("key_create"), key_post(**{"budget-amount": amount}))
        assert response.status_code == 400
        assert "amount" in response.context["budget_form"].errors
    assert not VirtualKey.objects.filter(organization=org).exists()
    assert not Budget.objects.exists()


def test_a_service_refusal_of_the_budget_rolls_the_key_back(client, org, admin_user):
    """An amount the form accepts but the service refuses (over 1e9): the key is not created either."""
    response = logged_in(client, admin_user).post(reverse("key_create"), key_post(**{"budget-amount": "5000000000"}))
    assert response.status_code == 400
    assert "amount" in response.context["budget_form"].errors
    assert not VirtualKey.objects.filter(organization=org).exists()


def test_change_and_remove_the_budget_on_the_key_form(client, org, admin_user):
    key = VirtualKeyFactory(organization=org, user=admin_user, name="Edited")
    client = logged_in(client, admin_user)
    page = client.get(reverse("key_detail", args=[key.pk])).content.decode()
    assert 'name="budget-amount"' in page and 'name="edit-rpm_limit"' in page and 'name="edit-tpm_limit"' in page

    assert client.post(reverse("key_update", args=[key.pk]), edit_post(key, **{"budget-amount": "10", "edit-tpm_limit": "5000"})).status_code == 302
    budget = Budget.objects.get(scope=Budget.Scope.KEY, key=key)
    key.refresh_from_db()
    assert (budget.amount, budget.period, budget.hard, key.tpm_limit) == (Decimal("10"), "month", True, 5000)

    page = client.get(reverse("key_detail", args=[key.pk]))
    assert page.context["budget_form"]["amount"].value() == Decimal("10")

    assert client.post(reverse("key_update", args=[key.pk]), edit_post(key, **{"budget-amount": "12", "budget-period": "day", "budget-hard": "soft"})).status_code == 302
    budget.refresh_from_db()
    assert (budget.amount, budget.period, budget.hard) == (Decimal("12"), "day", False)
    assert AuditLog.objects.filter(organization=org, action="budget.update").count() == 1

    # Saving the same values again changes nothing (no audit entry, no reload of the relay's snapshots).
    assert client.post(reverse("key_update", args=[key.pk]), edit_post(key, **{"budget-amount": "12", "budget-period": "day", "budget-hard": "soft"})).status_code == 302
    assert AuditLog.objects.filter(organization=org, action="budget.update").count() == 1

    # A form without the budget fields leaves the budget alone; an empty amount removes it.
    without = {k: v for k, v in edit_post(key).items() if not k.startswith("budget-")}
    assert client.post(reverse("key_update", args=[key.pk]), without).status_code == 302
    assert Budget.objects.filter(pk=budget.pk).exists()
    assert client.post(reverse("key_update", args=[key.pk]), edit_post(key)).status_code == 302
    assert not Budget.objects.filter(pk=budget.pk).exists()
    assert AuditLog.objects.filter(organization=org, action="budget.delete").exists()


def test_members_see_their_keys_spend_but_set_no_budgets(client, org, member_user, owner):
    """The role matrix: budgets are set by manage_budgets; a member sees what applies to their own key."""
    mine = VirtualKeyFactory(organization=org, user=member_user, name="Mine")
    theirs = VirtualKeyFactory(organization=org, user=owner, name="Theirs")
    BudgetFactory(organization=org, scope=Budget.Scope.KEY, key=mine, amount=Decimal("4"))
    spend(org, mine, "1")
    spend(org, theirs, "2")
    client = logged_in(client, member_user)
    html = client.get(reverse("keys")).content.decode()
    assert "$3.00 left of $4.00" in row_of(html, "Mine") and 'data-key="Theirs"' not in html
    assert 'name="budget-amount"' not in html
    detail = client.get(reverse("key_detail", args=[mine.pk])).content.decode()
    assert 'name="budget-amount"' not in detail and "$3.00 left of $4.00" in detail

    response = client.post(reverse("key_update", args=[mine.pk]), edit_post(mine, **{"budget-amount": "1000"}))
    assert response.status_code == 302
    assert Budget.objects.get(key=mine).amount == Decimal("4"), "budget fields from a member are ignored"
    client.post(reverse("key_create"), key_post(name="New", **{"budget-amount": "1000"}))
    assert not Budget.objects.filter(key__name="New").exists()


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_managers_get_the_budget_fields_on_the_create_form(client, org, member_of, role):
    html = logged_in(client, member_of(org, role).user).get(reverse("keys")).content.decode()
    create = html[html.index('id="create-key"'):]
    assert 'name="budget-amount"' in create and 'name="rpm_limit"' in create and 'name="tpm_limit"' in create
    assert "Budget (USD)" in create


def test_key_pages_in_chinese(client, org, owner):
    key = VirtualKeyFactory(organization=org, user=owner, name="Zh")
    client = logged_in(client, owner)
    html = client.get(reverse("keys"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "本月" in row_of(html, "Zh")
    assert "预算" in client.get(reverse("key_detail", args=[key.pk]), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
