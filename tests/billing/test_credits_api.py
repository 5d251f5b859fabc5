"""The credits REST API: wallet and redemption, policy, top-ups and deductions, codes; field errors; isolation."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tenancy import OrgContext
from billing import credits
from billing.credit_codes import redemption_codes_generate
from billing.credit_models import CreditAccount, RedemptionCode
from tests.accounts.factories import MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(user):
    client = APIClient()
    client.force_login(user)
    return client


def field_error(response, field):
    assert response.status_code == 400, (response.status_code, response.content)
    error = response.json()["error"]
    assert field in error["fields"], error
    return error


def later(days=7):
    return (timezone.now() + timedelta(days=days)).isoformat()


def test_admin_generates_codes_a_member_redeems_one_and_sees_the_balance(org, admin_user, member_user):
    admin, member = client_for(admin_user), client_for(member_user)
    response = admin.post("/api/credits/codes/", {"count": 2, "amount": "4.5", "expires_at": later()}, format="json")
    assert response.status_code == 201
    codes = response.json()["codes"]
    assert len(codes) == 2 and all(code.startswith("TGC-") for code in codes)
    listed = admin.get("/api/credits/codes/").json()["results"]
    assert len(listed) == 2 and not any(code in str(listed) for code in codes)  # never shown again
    assert member.post("/api/credits/redeem/", {"code": codes[0]}, format="json").json() == {"amount": "4.5", "balance": "4.5"}
    wallet = member.get("/api/credits/wallet/").json()
    assert wallet["balance"] == "4.5" and wallet["currency"] == org.currency
    assert [(e["kind"], e["amount"]) for e in wallet["entries"]] == [("redemption", "4.5")]
    error = field_error(member.post("/api/credits/redeem/", {"code": codes[0]}, format="json"), "code")
    assert error["code"] == "used_code"
    field_error(member.post("/api/credits/redeem/", {}, format="json"), "code")
    exported = list(csv.DictReader(io.StringIO(admin.get("/api/credits/codes/", {"export": "csv"}).content.decode())))
    assert sorted(bool(row["redeemed_at"]) for row in exported) == [False, True]
    assert not any(code in str(exported) for code in codes)


def test_generating_as_csv_shows_the_codes_once(admin_user):
    response = client_for(admin_user).post("/api/credits/codes/?export=csv", {"count": 3, "amount": "1", "expires_at": later()}, format="json")
    assert response.status_code == 201 and response["Content-Type"].startswith("text/csv")
    assert response["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 3 and {row["amount"] for row in rows} == {"1"}
    assert RedemptionCode.objects.count() == 3


@pytest.mark.parametrize("body, field", [
    ({"count": 0, "amount": "1"}, "count"),
    ({"count": "many", "amount": "1"}, "count"),
    ({"count": 1, "amount": "-2"}, "amount"),
    ({"count": 1, "amount": "1.1234567"}, "amount"),
    ({"count": 1, "amount": "1", "expires_at": "yesterday"}, "expires_at"),
])
def test_code_generation_field_errors(admin_user, body, field):
    field_error(client_for(admin_user).post("/api/credits/codes/", {"expires_at": later(), **body}, format="json"), field)


def test_policy_round_trip_and_field_errors(admin_user, member_user):
    admin = client_for(admin_user)
    response = admin.put("/api/credits/policy/", {"signup_amount": "5", "inviter_amount": "2", "invitee_amount": "3", "inviter_cap": "10",
                                                  "grant_expiry_days": "30", "low_balance": "1"}, format="json")
    assert response.status_code == 200
    assert admin.get("/api/credits/policy/").json() == {
        "signup_amount": "5", "inviter_amount": "2", "invitee_amount": "3", "inviter_cap": 10, "grant_expiry_days": 30, "low_balance": "1",
    }
    field_error(admin.put("/api/credits/policy/", {"signup_amount": "lots"}, format="json"), "signup_amount")
    field_error(admin.put("/api/credits/policy/", {"inviter_cap": "-3"}, format="json"), "inviter_cap")
    assert client_for(member_user).get("/api/credits/policy/").status_code == 403


def test_topup_and_deduct_by_user_team_or_key_with_field_errors(org, admin_user, member_user):
    admin = client_for(admin_user)
    team = TeamFactory(organization=org)
    response = admin.post("/api/credits/accounts/", {"action": "topup", "user": member_user.pk, "amount": "10", "reason": "welcome"}, format="json")
    assert response.status_code == 201 and response.json()["amount"] == "10"
    assert admin.post("/api/credits/accounts/", {"action": "topup", "team": team.pk, "amount": "3", "reason": "team"}, format="json").status_code == 201
    response = admin.post("/api/credits/accounts/", {"action": "deduct", "user": member_user.pk, "amount": "4", "reason": "fix"}, format="json")
    assert response.json()["amount"] == "-4"
    accounts = {a["scope"]: a for a in admin.get("/api/credits/accounts/").json()["results"]}
    assert accounts["user"]["balance"] == "6" and accounts["team"]["balance"] == "3"
    entries = admin.get(f"/api/credits/accounts/{accounts['user']['id']}/entries/").json()["results"]
    assert [(e["kind"], e["amount"], e["reason"]) for e in entries] == [("deduction", "-4", "fix"), ("topup", "10", "welcome")]
    field_error(admin.post("/api/credits/accounts/", {"action": "deduct", "user": member_user.pk, "amount": "7", "reason": "x"}, format="json"), "amount")
    field_error(admin.post("/api/credits/accounts/", {"action": "topup", "user": member_user.pk, "amount": "1", "reason": ""}, format="json"), "reason")
    field_error(admin.post("/api/credits/accounts/", {"action": "topup", "amount": "1", "reason": "r"}, format="json"), "user")
    field_error(admin.post("/api/credits/accounts/", {"action": "give", "user": member_user.pk, "amount": "1", "reason": "r"}, format="json"), "action")
    field_error(admin.post("/api/credits/accounts/", {"action": "topup", "user": member_user.pk, "amount": "x", "reason": "r"}, format="json"), "amount")
    assert client_for(member_user).post("/api/credits/accounts/", {"action": "topup", "user": member_user.pk, "amount": "1", "reason": "me"}, format="json").status_code == 403


def test_another_orgs_balances_codes_and_ledger_are_out_of_reach(org, other_org, admin_user, member_user):
    outsider_admin = MembershipFactory(organization=other_org, role=Role.OWNER, user=UserFactory()).user
    outsider = client_for(outsider_admin)
    ctx = OrgContext(organization=org, role=Role.ADMIN, user=admin_user)
    account = credits.credit_account_get(organization=org, user=member_user)
    credits.credit_topup(actor=ctx, account=account, amount="5", reason="ours")
    _batch, ((_row, code),) = redemption_codes_generate(actor=ctx, count=1, amount="2", expires_at=timezone.now() + timedelta(days=1))
    # reading
    assert outsider.get("/api/credits/accounts/").json()["results"] == []
    assert outsider.get(f"/api/credits/accounts/{account.pk}/entries/").status_code == 404
    assert outsider.get("/api/credits/codes/").json()["results"] == []
    assert outsider.get("/api/credits/wallet/").json()["balance"] == "0"
    # altering
    field_error(outsider.post("/api/credits/accounts/", {"action": "topup", "user": member_user.pk, "amount": "1", "reason": "x"}, format="json"), "user")
    field_error(outsider.post("/api/credits/accounts/", {"action": "deduct", "user": member_user.pk, "amount": "1", "reason": "x"}, format="json"), "user")
    assert field_error(outsider.post("/api/credits/redeem/", {"code": code}, format="json"), "code")["code"] == "invalid_code"
    assert credits.credit_balance(account=account) == Decimal("5")
    assert RedemptionCode.objects.get().redeemed_at is None
    assert not CreditAccount.objects.filter(organization=other_org).exists()
