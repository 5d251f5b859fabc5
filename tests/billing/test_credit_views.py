"""The wallet and credits admin pages: redeem, history, policy, top-up and deduct, codes as CSV once."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLog, Role
from accounts.tenancy import OrgContext
from billing import credits
from billing.credit_codes import redemption_codes_generate
from billing.credit_models import CreditAccount, CreditPolicy, RedemptionCode
from billing.channels import alert_message
from billing.models import Alert
from tests.billing.factories import AlertChannelFactory, UsageEventFactory

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_a_member_redeems_a_code_and_sees_balance_and_history(org, admin_user, member_user):
    ctx = OrgContext(organization=org, role=Role.ADMIN, user=admin_user)
    _batch, ((_row, code),) = redemption_codes_generate(actor=ctx, count=1, amount="12.5", expires_at=timezone.now() + timedelta(days=1))
    client = signed_in(member_user)
    page = client.get(reverse("wallet"))
    assert page.status_code == 200 and reverse("credits_admin") not in page.content.decode()  # members see no admin link
    response = client.post(reverse("wallet_redeem"), {"code": code}, follow=True)
    body = response.content.decode()
    assert "12.50" in body and 'data-entry="redemption"' in body
    again = client.post(reverse("wallet_redeem"), {"code": code})
    assert again.status_code == 400 and "already been redeemed" in again.content.decode()
    assert client.post(reverse("wallet_redeem"), {"code": ""}).status_code == 400


def test_the_wallet_is_in_chinese_too(org, member_user):
    client = signed_in(member_user)
    client.cookies["django_language"] = "zh-hans"
    body = client.get(reverse("wallet"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "钱包" in body and "兑换" in body


def test_admin_sets_policy_tops_up_deducts_and_sees_field_errors(org, admin_user, member_user):
    client = signed_in(admin_user)
    assert client.get(reverse("credits_admin")).status_code == 200
    response = client.post(reverse("credit_policy_save"), {"policy-signup_amount": "5", "policy-invitee_amount": "", "policy-inviter_amount": "1",
                                                           "policy-inviter_cap": "3", "policy-grant_expiry_days": "", "policy-low_balance": "0.5"})
    assert response.status_code == 302
    policy = CreditPolicy.objects.get(organization=org)
    assert (policy.signup_amount, policy.inviter_cap, policy.low_balance) == (Decimal("5"), 3, Decimal("0.5"))
    bad = client.post(reverse("credit_policy_save"), {"policy-signup_amount": "five"})
    assert bad.status_code == 400 and "Enter a number." in bad.content.decode()
    holder = f"user:{member_user.pk}"
    assert client.post(reverse("credit_adjust"), {"adjust-holder": holder, "adjust-action": "topup", "adjust-amount": "8", "adjust-reason": "welcome"}).status_code == 302
    assert client.post(reverse("credit_adjust"), {"adjust-holder": holder, "adjust-action": "deduct", "adjust-amount": "3", "adjust-reason": "fix"}).status_code == 302
    account = CreditAccount.objects.get(organization=org, user=member_user)
    assert credits.credit_balance(account=account) == Decimal("5")
    too_much = client.post(reverse("credit_adjust"), {"adjust-holder": holder, "adjust-action": "deduct", "adjust-amount": "9", "adjust-reason": "x"})
    assert too_much.status_code == 400 and "a deduction cannot take more" in too_much.content.decode()
    no_reason = client.post(reverse("credit_adjust"), {"adjust-holder": holder, "adjust-action": "topup", "adjust-amount": "1", "adjust-reason": ""})
    assert no_reason.status_code == 400
    assert signed_in(member_user).get(reverse("credits_admin")).status_code == 403
    assert AuditLog.objects.filter(organization=org, action__in=["credit.topup", "credit.deduct", "credit.policy"]).count() == 3


def test_generated_codes_download_once_as_csv_and_the_export_has_no_codes(org, admin_user):
    client = signed_in(admin_user)
    until = (timezone.localtime() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(reverse("credit_codes_generate"), {"codes-count": "4", "codes-amount": "2", "codes-expires_at": until})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv") and response["Cache-Control"] == "no-store"
    codes = [row["code"] for row in csv.DictReader(io.StringIO(response.content.decode()))]
    assert len(codes) == 4 and RedemptionCode.objects.filter(organization=org).count() == 4
    page = client.get(reverse("credits_admin")).content.decode()
    export = client.get(reverse("credit_codes_export")).content.decode()
    assert not any(code in page or code in export for code in codes)
    assert len(list(csv.DictReader(io.StringIO(export)))) == 4
    bad = client.post(reverse("credit_codes_generate"), {"codes-count": "0", "codes-amount": "2", "codes-expires_at": until})
    assert bad.status_code == 400


def test_the_low_balance_alert_reads_as_words(org, admin_user, django_capture_on_commit_callbacks):
    ctx = OrgContext(organization=org, role=Role.ADMIN, user=admin_user)
    channel = AlertChannelFactory(organization=org)
    CreditPolicy.objects.create(organization=org, low_balance=Decimal("1"))
    account = credits.credit_account_get(organization=org, user=admin_user)
    credits.credit_topup(actor=ctx, account=account, amount="1.5", reason="start")
    UsageEventFactory(organization=org, credit_account_id=account.pk, cost_display=Decimal("1"))
    with django_capture_on_commit_callbacks(execute=True):
        credits.credit_usage_draw()
    assert credits._low_balance_check([account.pk]) == 0  # the draw already alerted (on commit)
    alert = Alert.objects.get(organization=org, kind="credit.low")
    message = alert_message(alert, channel)
    assert "is low" in message.title and any("0.50" in value for _label, value in message.lines)
