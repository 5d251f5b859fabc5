"""Credit ledger services: grants on joining (once), top-ups and deductions, codes, draws, expiry, alerts."""

import csv
import io
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.utils import timezone

from accounts import services as account_services
from accounts.errors import ApplicationError
from accounts.models import AuditLog, Role
from accounts.tenancy import OrgContext
from billing import credits
from billing.credit_codes import codes_csv, redemption_code_redeem, redemption_codes_generate
from billing.credit_grants import credit_member_joined, credit_policy_set
from billing.credit_models import CreditAccount, CreditEntry, RedemptionCode
from billing.models import Alert
from tests.accounts.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.billing.factories import AlertChannelFactory, UsageEventFactory


def ctx_for(org, role=Role.OWNER):
    user = MembershipFactory(organization=org, role=role, user=UserFactory()).user
    return OrgContext(organization=org, role=role, user=user)


def account_of(org, user):
    return credits.credit_account_get(organization=org, user=user)


def balance_of(org, user):
    account = CreditAccount.objects.filter(organization=org, user=user).first()
    return credits.credit_balance(account=account) if account else Decimal(0)


def use(account, amount):
    """Usage the relay recorded against the account (a ledger row), then drawn into the credit ledger."""
    UsageEventFactory(organization=account.organization, credit_account_id=account.pk, cost_display=Decimal(amount))
    credits.credit_usage_draw()


def accept(owner, email):
    invitation, token = account_services.invitation_create(actor=owner, email=email)
    user = UserFactory(email=email)
    return invitation, token, user


# Grants


@pytest.mark.django_db
def test_signup_and_invite_grants_apply_once_even_when_acceptance_is_retried():
    org = OrganizationFactory()
    owner = ctx_for(org)
    credit_policy_set(actor=owner, signup_amount="5", inviter_amount="2", invitee_amount="3")
    invitation, token, user = accept(owner, "new@example.com")
    membership = account_services.invitation_accept(token=token, user=user)
    assert balance_of(org, user) == Decimal("8")  # sign-up 5 + invitee 3
    assert balance_of(org, owner.user) == Decimal("2")
    with pytest.raises(ApplicationError) as info:  # a second click, or a retried request
        account_services.invitation_accept(token=token, user=user)
    assert info.value.code == "used_token"
    credit_member_joined(membership=membership, created=True, invitation=invitation)  # the listener itself, run again
    assert balance_of(org, user) == Decimal("8")
    assert balance_of(org, owner.user) == Decimal("2")
    kinds = sorted(CreditEntry.objects.filter(organization=org).values_list("kind", flat=True))
    assert kinds == ["invitee", "inviter", "signup"]
    assert AuditLog.objects.filter(organization=org, action="credit.grant").count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_acceptances_of_one_invitation_grant_once():
    if connection.vendor != "postgresql":
        pytest.skip("row locks under concurrency need PostgreSQL")
    org = OrganizationFactory()
    owner = ctx_for(org)
    credit_policy_set(actor=owner, signup_amount="5", inviter_amount="2", invitee_amount="3")
    _invitation, token, user = accept(owner, "racer@example.com")
    outcomes = []
    start = threading.Barrier(8)

    def attempt():
        try:
            start.wait()
            account_services.invitation_accept(token=token, user=user)
            outcomes.append("ok")
        except ApplicationError as error:
            outcomes.append(error.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 1 and outcomes.count("used_token") == 7
    assert balance_of(org, user) == Decimal("8")
    assert balance_of(org, owner.user) == Decimal("2")


@pytest.mark.django_db
def test_inviter_grants_stop_at_the_cap_and_grants_expire_as_set():
    org = OrganizationFactory()
    owner = ctx_for(org)
    credit_policy_set(actor=owner, inviter_amount="1", inviter_cap="2", grant_expiry_days="30")
    for n in range(3):
        _i, token, user = accept(owner, f"u{n}@example.com")
        account_services.invitation_accept(token=token, user=user)
    assert balance_of(org, owner.user) == Decimal("2")
    lot = CreditEntry.objects.filter(organization=org, kind="inviter").first()
    assert timedelta(days=29) < lot.expires_at - timezone.now() <= timedelta(days=30)


@pytest.mark.django_db
def test_an_org_without_a_policy_grants_nothing():
    org = OrganizationFactory()
    owner = ctx_for(org)
    _i, token, user = accept(owner, "plain@example.com")
    account_services.invitation_accept(token=token, user=user)
    assert not CreditAccount.objects.filter(organization=org).exists()


@pytest.mark.django_db
def test_policy_field_errors():
    owner = ctx_for(OrganizationFactory())
    for values, field in (({"signup_amount": "-1"}, "signup_amount"), ({"invitee_amount": "abc"}, "invitee_amount"),
                          ({"inviter_cap": "0"}, "inviter_cap"), ({"grant_expiry_days": "x"}, "grant_expiry_days"),
                          ({"low_balance": "1.0000001"}, "low_balance")):
        with pytest.raises(ApplicationError) as info:
            credit_policy_set(actor=owner, **values)
        assert info.value.field == field


# Expiry and draws


@pytest.mark.django_db
def test_expiry_takes_only_what_is_left_of_granted_credit():
    org = OrganizationFactory()
    owner = ctx_for(org)
    account = account_of(org, owner.user)
    credits.credit_in(account=account, kind="signup", amount=Decimal("5"), source="signup:x", expires_at=timezone.now() + timedelta(days=1))
    credits.credit_topup(actor=owner, account=account, amount="10", reason="paid")
    use(account, "2")  # spent from the expiring grant first
    assert credits.credit_expire(now=timezone.now() + timedelta(days=2)) == 1
    expiry = CreditEntry.objects.get(account=account, kind="expiry")
    assert expiry.amount == Decimal("-3")
    assert credits.credit_balance(account=account) == Decimal("10")
    assert credits.credit_expire(now=timezone.now() + timedelta(days=3)) == 0  # once
    # balances are sums of entries
    assert sum(CreditEntry.objects.filter(account=account).values_list("amount", flat=True)) == Decimal("10")


@pytest.mark.django_db
def test_usage_beyond_the_balance_is_debt_that_new_credit_pays_first():
    org = OrganizationFactory()
    owner = ctx_for(org)
    account = account_of(org, owner.user)
    credits.credit_topup(actor=owner, account=account, amount="1", reason="start")
    use(account, "1.01")
    assert credits.credit_balance(account=account) == Decimal("-0.01")
    credits.credit_in(account=account, kind="signup", amount=Decimal("1"), source="s", expires_at=timezone.now() + timedelta(days=1))
    assert credits.credit_expire(now=timezone.now() + timedelta(days=2)) == 1
    assert CreditEntry.objects.get(account=account, kind="expiry").amount == Decimal("-0.99")
    assert credits.credit_balance(account=account) == 0


@pytest.mark.django_db
def test_low_balance_alerts_once_through_the_channels_until_the_next_top_up():
    org = OrganizationFactory()
    owner = ctx_for(org)
    AlertChannelFactory(organization=org)
    credit_policy_set(actor=owner, low_balance="1")
    account = account_of(org, owner.user)
    credits.credit_topup(actor=owner, account=account, amount="2", reason="start")
    use(account, "0.5")
    assert not Alert.objects.filter(organization=org, kind="credit.low").exists()
    assert credits._low_balance_check([account.pk]) == 0
    use(account, "0.7")
    assert credits._low_balance_check([account.pk]) == 1
    assert credits._low_balance_check([account.pk]) == 0  # once
    credits.credit_topup(actor=owner, account=account, amount="0.1", reason="a little")
    assert credits._low_balance_check([account.pk]) == 1  # re-armed by the top-up, still low
    alert = Alert.objects.filter(organization=org, kind="credit.low").first()
    assert alert.payload["balance"] == "0.9" and alert.deliveries.count() == 1


# Top-ups and deductions


@pytest.mark.django_db
def test_topups_and_deductions_need_a_reason_an_admin_and_stay_within_the_balance():
    org = OrganizationFactory()
    owner = ctx_for(org)
    member = ctx_for(org, Role.MEMBER)
    account = account_of(org, member.user)
    credits.credit_topup(actor=owner, account=account, amount="3.50", reason="welcome", ip="203.0.113.9")
    credits.credit_deduct(actor=owner, account=account, amount="1.25", reason="refund reversed")
    assert credits.credit_balance(account=account) == Decimal("2.25")
    with pytest.raises(ApplicationError) as info:
        credits.credit_deduct(actor=owner, account=account, amount="3", reason="too much")
    assert info.value.field == "amount"
    with pytest.raises(ApplicationError) as info:
        credits.credit_topup(actor=owner, account=account, amount="1", reason="  ")
    assert info.value.field == "reason"
    for bad in ("0", "-1", "nan", "x", "1e12"):
        with pytest.raises(ApplicationError) as info:
            credits.credit_topup(actor=owner, account=account, amount=bad, reason="r")
        assert info.value.field == "amount"
    with pytest.raises(ApplicationError) as info:
        credits.credit_topup(actor=member, account=account, amount="1", reason="me")
    assert info.value.status == 403
    actions = list(AuditLog.objects.filter(organization=org, action__startswith="credit.").values_list("action", "data"))
    assert ("credit.topup", {"amount": "3.50", "reason": "welcome"}) in actions
    assert ("credit.deduct", {"amount": "1.25", "reason": "refund reversed"}) in actions
    entry = CreditEntry.objects.get(account=account, kind="deduction")
    assert (entry.amount, entry.reason, entry.actor) == (Decimal("-1.25"), "refund reversed", owner.user)


# Redemption codes


@pytest.mark.django_db
def test_codes_are_shown_once_stored_hashed_and_redeem_once():
    org = OrganizationFactory()
    owner = ctx_for(org)
    member = ctx_for(org, Role.MEMBER)
    batch, pairs = redemption_codes_generate(actor=owner, count=3, amount="2.5", expires_at=timezone.now() + timedelta(days=7))
    assert len(pairs) == 3 and len({code for _row, code in pairs}) == 3
    rows = list(csv.DictReader(io.StringIO(codes_csv(pairs, currency="USD"))))
    assert [r["code"] for r in rows] == [code for _row, code in pairs]
    assert rows[0]["amount"] == "2.5" and rows[0]["batch"] == batch
    for row, code in pairs:  # nothing stored reveals a code
        stored = RedemptionCode.objects.filter(pk=row.pk).values().get()
        assert not any(code in str(value) or code.replace("-", "") in str(value) for value in stored.values())
    code = pairs[0][1]
    redemption_code_redeem(actor=member, code=code.lower().replace("-", " "))  # typed loosely
    assert balance_of(org, member.user) == Decimal("2.5")
    with pytest.raises(ApplicationError) as info:
        redemption_code_redeem(actor=owner, code=code)
    assert (info.value.field, info.value.code) == ("code", "used_code")
    with pytest.raises(ApplicationError) as info:
        redemption_code_redeem(actor=member, code="TGC-AAAAA-AAAAA-AAAAA-AAAAA")
    assert info.value.code == "invalid_code"
    assert AuditLog.objects.filter(organization=org, action="credit.redeem").count() == 1
    assert AuditLog.objects.filter(organization=org, action="credit.codes_generate").count() == 1


@pytest.mark.django_db
def test_expired_codes_and_bad_batches_are_refused():
    org = OrganizationFactory()
    owner = ctx_for(org)
    _batch, pairs = redemption_codes_generate(actor=owner, count=1, amount="1", expires_at=timezone.now() + timedelta(days=1))
    RedemptionCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ApplicationError) as info:
        redemption_code_redeem(actor=owner, code=pairs[0][1])
    assert info.value.code == "expired_code"
    for kwargs, field in (({"count": 0}, "count"), ({"count": "x"}, "count"), ({"count": 10_001}, "count"),
                          ({"amount": "0"}, "amount"), ({"expires_at": timezone.now() - timedelta(days=1)}, "expires_at"),
                          ({"expires_at": None}, "expires_at")):
        args = {"count": 1, "amount": "1", "expires_at": timezone.now() + timedelta(days=1), **kwargs}
        with pytest.raises(ApplicationError) as info:
            redemption_codes_generate(actor=owner, **args)
        assert info.value.field == field


@pytest.mark.django_db
def test_another_orgs_code_is_not_valid_here():
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    _batch, pairs = redemption_codes_generate(actor=ctx_for(theirs), count=1, amount="1", expires_at=timezone.now() + timedelta(days=1))
    with pytest.raises(ApplicationError) as info:
        redemption_code_redeem(actor=ctx_for(mine, Role.MEMBER), code=pairs[0][1])
    assert info.value.code == "invalid_code"
    assert RedemptionCode.objects.get().redeemed_at is None


@pytest.mark.django_db(transaction=True)
def test_a_code_redeemed_by_20_concurrent_requests_credits_once():
    if connection.vendor != "postgresql":
        pytest.skip("the race needs PostgreSQL")
    org = OrganizationFactory()
    owner = ctx_for(org)
    members = [ctx_for(org, Role.MEMBER) for _ in range(20)]
    _batch, ((_row, code),) = redemption_codes_generate(actor=owner, count=1, amount="7", expires_at=timezone.now() + timedelta(days=1))
    outcomes = []
    start = threading.Barrier(20)

    def redeem(member):
        try:
            start.wait()
            redemption_code_redeem(actor=member, code=code)
            outcomes.append("ok")
        except ApplicationError as error:
            outcomes.append(error.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=redeem, args=(m,)) for m in members]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 1 and outcomes.count("used_code") == 19, outcomes
    assert CreditEntry.objects.filter(organization=org, kind="redemption").count() == 1
    assert sum(credits.credit_balances(account_ids=CreditAccount.objects.filter(organization=org).values_list("pk", flat=True)).values()) == Decimal("7")


@pytest.mark.django_db
def test_the_balance_counts_usage_recorded_but_not_drawn_yet():
    org = OrganizationFactory()
    owner = ctx_for(org)
    account = account_of(org, owner.user)
    credits.credit_topup(actor=owner, account=account, amount="5", reason="start")
    UsageEventFactory(organization=org, credit_account_id=account.pk, cost_display=Decimal("1.25"))
    assert credits.credit_balance(account=account) == Decimal("3.75")  # before the draw
    assert credits.credit_usage_draw() == 1
    assert credits.credit_balance(account=account) == Decimal("3.75")  # after it: the same, now as an entry
    assert CreditEntry.objects.get(account=account, kind="usage").amount == Decimal("-1.25")
