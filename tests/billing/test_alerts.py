"""billing.alerts: channel configuration, firing once, delivery with retries, disabling, no secret leaks.

Everything goes over real loopback servers (aiosmtpd, http.server); Celery runs eagerly in-process.
"""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

import billing.tasks_alerts  # noqa: F401 - registers the tasks that alert_fire enqueues by name
from accounts.errors import ApplicationError
from accounts.models import AuditLog, Role
from accounts.tenancy import OrgContext
from billing import alerts
from billing.alerts import (
    alert_channel_create,
    alert_channel_delete,
    alert_channel_rotate_secret,
    alert_channel_update,
    alert_deliver,
    alert_deliveries_due,
    alert_fire,
    alert_send_test,
)
from billing.models import Alert, AlertChannel, AlertDelivery, Budget
from config.celery import app as celery_app
from keys.encryption import decrypt
from tests.billing.receivers import Reply, smtp_server, use_smtp, webhook_receiver
from tests.billing.test_webhooks import documented_snippet

PAYLOAD = {
    "budget_id": 1, "budget": "Org monthly", "scope": "org", "period": "month", "period_start": "2026-03-01T00:00:00+00:00",
    "amount": "50.000000", "spent": "41.000000", "currency": "CNY", "percent": "82.0", "hard": False, "threshold": 80,
}
Status = AlertDelivery.Status


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["127.0.0.1"]
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True


@pytest.fixture(autouse=True)
def eager_celery():
    previous = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


@pytest.fixture
def smtp(settings):
    with smtp_server() as server:
        use_smtp(settings, server)
        yield server


@pytest.fixture
def receiver():
    with webhook_receiver() as r:
        yield r


@pytest.fixture
def admin_ctx(org, admin_user):
    return OrgContext(organization=org, role=Role.ADMIN, user=admin_user)


@pytest.fixture
def fire(org, django_capture_on_commit_callbacks):
    """alert_fire, then run what it queued after commit (the eager alert_deliver task)."""

    def _fire(dedupe_key="budget:1:202603:80", payload=PAYLOAD, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return alert_fire(organization=org, kind="budget.threshold", dedupe_key=dedupe_key, payload=payload, **kwargs)

    return _fire


def webhook(ctx, receiver, name="Ops hook"):
    return alert_channel_create(actor=ctx, name=name, kind="webhook", target=receiver.url())


def make_due(delivery):
    AlertDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


# --- Channel configuration -----------------------------------------------------------------------


def test_webhook_channel_gets_a_secret_once_stored_encrypted(owner_ctx, receiver):
    channel, secret = webhook(owner_ctx, receiver)
    assert secret.startswith("whsec_")
    channel.refresh_from_db()
    assert secret not in channel.secret_encrypted and decrypt(channel.secret_encrypted) == secret
    assert channel.enabled and channel.organization == owner_ctx.organization


def test_bot_channel_keeps_its_given_secret_and_returns_none(owner_ctx, receiver):
    channel, returned = alert_channel_create(actor=owner_ctx, name="Ding", kind="dingtalk", target=receiver.url("/robot/send?access_token=t"), secret="SECabc")
    assert returned is None and decrypt(channel.secret_encrypted) == "SECabc"
    channel, returned = alert_channel_create(actor=owner_ctx, name="WeCom", kind="wecom", target=receiver.url("/send?key=k"))
    assert returned is None and channel.secret_encrypted == ""


def test_manage_budgets_permission_is_required(org, member_of, receiver):
    for role in (Role.MEMBER, Role.VIEWER):
        ctx = OrgContext(organization=org, role=role, user=member_of(org, role).user)
        with pytest.raises(ApplicationError) as info:
            webhook(ctx, receiver)
        assert info.value.status == 403
    assert not AlertChannel.objects.exists()


def test_another_orgs_channel_is_not_found(owner_ctx, other_org, member_of, receiver):
    channel, _ = webhook(owner_ctx, receiver)
    stranger = OrgContext(organization=other_org, role=Role.OWNER, user=member_of(other_org, Role.OWNER).user)
    for call in (
        lambda: alert_channel_update(actor=stranger, channel=channel, name="x"),
        lambda: alert_channel_delete(actor=stranger, channel=channel),
        lambda: alert_channel_rotate_secret(actor=stranger, channel=channel),
        lambda: alert_send_test(actor=stranger, channel=channel),
    ):
        with pytest.raises(ApplicationError) as info:
            call()
        assert info.value.status == 404
    assert receiver.requests == []


@pytest.mark.parametrize("url", ["http://169.254.169.254/hook", "http://10.1.2.3/hook", "http://localhost/hook", "file:///etc/passwd", "gopher://x/"])
def test_unsafe_urls_are_refused_at_save(owner_ctx, settings, url):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []
    with pytest.raises(ApplicationError) as info:
        alert_channel_create(actor=owner_ctx, name="x", kind="webhook", target=url)
    assert info.value.field == "target"


@pytest.mark.parametrize("target", ["", "not-an-email", "a@example.com, nope", ",".join(f"u{i}@example.com" for i in range(21))])
def test_bad_email_lists_are_refused(owner_ctx, target):
    with pytest.raises(ApplicationError) as info:
        alert_channel_create(actor=owner_ctx, name="mail", kind="email", target=target)
    assert info.value.field == "target"


def test_email_list_is_normalised(owner_ctx):
    channel, secret = alert_channel_create(actor=owner_ctx, name="mail", kind="email", target=" Ops@Example.com,cfo@example.com,ops@example.com ")
    assert channel.target == "ops@example.com, cfo@example.com" and secret is None


def test_bad_secrets_are_refused(owner_ctx, receiver):
    with pytest.raises(ApplicationError):
        alert_channel_create(actor=owner_ctx, name="x", kind="webhook", target=receiver.url(), secret="whsec_short")
    with pytest.raises(ApplicationError):
        alert_channel_create(actor=owner_ctx, name="x", kind="email", target="a@example.com", secret="s")
    channel, _ = webhook(owner_ctx, receiver)
    with pytest.raises(ApplicationError):
        alert_channel_update(actor=owner_ctx, channel=channel, secret="whsec_" + "A" * 40)


def test_update_and_reenable(owner_ctx, receiver):
    channel, _ = alert_channel_create(actor=owner_ctx, name="Feishu", kind="feishu", target=receiver.url("/hook/t1"))
    AlertChannel.objects.filter(pk=channel.pk).update(enabled=False, disabled_reason="The endpoint answered 410 Gone.")
    channel.refresh_from_db()
    alert_channel_update(actor=owner_ctx, channel=channel, name="Lark", target=receiver.url("/hook/t2"), secret="newsecret", enabled=True)
    channel.refresh_from_db()
    assert (channel.name, channel.enabled, channel.disabled_reason) == ("Lark", True, "")
    assert channel.url().endswith("/hook/t2") and channel.target == "" and decrypt(channel.secret_encrypted) == "newsecret"
    alert_channel_delete(actor=owner_ctx, channel=channel)
    assert not AlertChannel.objects.exists()


# --- Firing once ---------------------------------------------------------------------------------


def test_same_dedupe_key_fires_once_with_one_delivery_per_enabled_channel(owner_ctx, fire, receiver, smtp):
    webhook(owner_ctx, receiver)
    alert_channel_create(actor=owner_ctx, name="Mail", kind="email", target="ops@example.com")
    off, _ = alert_channel_create(actor=owner_ctx, name="Off", kind="wecom", target=receiver.url("/send?key=k"), enabled=False)
    budget = Budget.objects.create(organization=owner_ctx.organization, name="Org monthly", scope="org", amount=50)
    first = fire(budget=budget)
    assert first is not None and first.budget == budget
    assert fire() is None
    assert fire(payload={**PAYLOAD, "spent": "49"}) is None
    assert Alert.objects.count() == 1
    assert sorted(AlertDelivery.objects.values_list("channel__name", flat=True)) == ["Mail", "Ops hook"]
    assert not off.deliveries.exists()
    assert len(receiver.requests) == 1 and len(smtp.messages) == 1
    assert all(d.status == Status.SENT for d in AlertDelivery.objects.all())


def test_message_ids_are_unique_and_dot_free(owner_ctx, fire, receiver):
    webhook(owner_ctx, receiver)
    for n in range(3):
        fire(dedupe_key=f"k{n}")
    ids = list(AlertDelivery.objects.values_list("message_id", flat=True))
    assert len(set(ids)) == 3 and all(i.startswith("msg_") and "." not in i for i in ids)


# --- Email and webhook arrive --------------------------------------------------------------------


def test_email_alert_arrives_at_the_smtp_server(owner_ctx, fire, smtp, settings):
    settings.TOLLGATE_PUBLIC_URL = "https://gw.example.com"
    alert_channel_create(actor=owner_ctx, name="Mail", kind="email", target="ops@example.com, cfo@example.com")
    fire()
    (mail,) = smtp.messages
    assert sorted(mail["to"]) == ["cfo@example.com", "ops@example.com"]
    assert "Org monthly" in mail["message"]["Subject"] and "80%" in mail["message"]["Subject"]
    body = smtp.body()
    assert "¥41.00 of ¥50.00 (82.0%)" in body and "https://gw.example.com/" in body
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (Status.SENT, 1) and delivery.sent_at


def test_webhook_alert_arrives_signed(owner_ctx, fire, receiver):
    _, secret = webhook(owner_ctx, receiver)
    fire()
    (request,) = receiver.requests
    documented_snippet()(secret, request.headers, request.body)
    delivery = AlertDelivery.objects.get()
    assert request.headers["webhook-id"] == delivery.message_id
    assert request.json()["type"] == "budget.threshold" and request.json()["data"] == PAYLOAD
    assert (delivery.status, delivery.last_status_code) == (Status.SENT, 200)


def test_rotated_secrets_both_verify_until_the_next_rotation(owner_ctx, fire, receiver):
    channel, first = webhook(owner_ctx, receiver)
    channel, second = alert_channel_rotate_secret(actor=owner_ctx, channel=channel)
    assert second != first and decrypt(channel.previous_secret_encrypted) == first
    fire(dedupe_key="a")
    request = receiver.requests[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    documented_snippet()(first, request.headers, request.body)
    documented_snippet()(second, request.headers, request.body)
    channel, third = alert_channel_rotate_secret(actor=owner_ctx, channel=channel)
    fire(dedupe_key="b")
    request = receiver.requests[-1]
    documented_snippet()(second, request.headers, request.body)
    documented_snippet()(third, request.headers, request.body)
    with pytest.raises(ValueError):
        documented_snippet()(first, request.headers, request.body)


# --- Retries -------------------------------------------------------------------------------------


def test_receiver_failing_twice_gets_the_alert_after_retries(owner_ctx, fire, receiver):
    _, secret = webhook(owner_ctx, receiver)
    receiver.fail_first(2, status=500)
    fire()
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.RETRYING, 1, 500)
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert 20 <= wait <= 37  # 30 s with jitter
    assert alert_deliveries_due() == 0  # not due yet
    assert len(receiver.requests) == 1

    make_due(delivery)
    assert alert_deliveries_due() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Status.RETRYING, 2)
    assert 45 <= (delivery.next_attempt_at - timezone.now()).total_seconds() <= 73  # doubled

    make_due(delivery)
    assert alert_deliveries_due() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (Status.SENT, 3, 200, "")
    assert len(receiver.requests) == 3
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery.message_id}
    for request in receiver.requests:
        documented_snippet()(secret, request.headers, request.body)

    # Idempotent: a sent delivery is never sent again, whatever asks.
    make_due(delivery)
    assert alert_deliver(delivery_id=delivery.pk) is None
    assert alert_deliveries_due() == 0
    billing.tasks_alerts.alert_deliver.apply(args=[delivery.pk])
    assert len(receiver.requests) == 3


def test_backoff_grows_and_is_capped_at_an_hour():
    waits = [alerts._backoff(n, None) for n in range(1, 20)]
    assert 24 <= waits[0] <= 36 and 48 <= waits[1] <= 72
    assert max(waits) <= 3600 and waits[-1] >= 2880
    assert alerts._backoff(3, 600) == 600 and alerts._backoff(1, 10**9) == 3600 and alerts._backoff(1, 0) == 1


def test_retry_after_is_honoured(owner_ctx, fire, receiver):
    webhook(owner_ctx, receiver)
    receiver.answer(Reply(429, b"", {"Retry-After": "600"}))
    fire()
    delivery = AlertDelivery.objects.get()
    assert delivery.status == Status.RETRYING and delivery.last_status_code == 429
    assert 590 <= (delivery.next_attempt_at - timezone.now()).total_seconds() <= 600


def test_410_gone_disables_the_channel_at_once(owner_ctx, admin_user, member_user, fire, receiver, smtp):
    channel, _ = webhook(owner_ctx, receiver)
    receiver.answer(Reply(410))
    fire()  # runs the delivery, and the notice queued after it
    delivery = AlertDelivery.objects.get()
    channel.refresh_from_db()
    assert delivery.status == Status.FAILED and delivery.last_status_code == 410
    assert not channel.enabled and "410" in channel.disabled_reason
    (notice,) = smtp.messages
    assert sorted(notice["to"]) == sorted([owner_ctx.user.email, admin_user.email])  # not the member
    assert "Ops hook" in notice["message"]["Subject"]
    assert fire(dedupe_key="next") is not None and AlertDelivery.objects.count() == 1  # a disabled channel gets nothing


def test_24_hours_of_failures_fail_the_delivery_disable_the_channel_and_tell_admins(owner_ctx, fire, smtp, django_capture_on_commit_callbacks):
    with webhook_receiver(Reply(500, b"down")) as receiver:
        channel, _ = webhook(owner_ctx, receiver)
        fire()
        delivery = AlertDelivery.objects.get()
        assert delivery.status == Status.RETRYING
        # The first attempt was 25 hours ago; this retry is the last one.
        AlertDelivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(hours=25))
        make_due(delivery)
        with django_capture_on_commit_callbacks(execute=True):
            assert alert_deliveries_due() == 1
        assert len(receiver.requests) == 2
    delivery.refresh_from_db()
    channel.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (Status.FAILED, 2, "HTTP 500")
    assert not channel.enabled and "24 hours" in channel.disabled_reason
    (notice,) = smtp.messages
    assert notice["to"] == [owner_ctx.user.email]
    assert "Ops hook" in smtp.body() and "24 hours" in smtp.body()
    assert AuditLog.objects.filter(action="alert_channel.disable", target_id=str(channel.pk)).exists()


def test_retries_never_go_past_the_24_hour_window(owner_ctx, fire):
    with webhook_receiver(Reply(503)) as receiver:
        webhook(owner_ctx, receiver)
        fire()
        delivery = AlertDelivery.objects.get()
        AlertDelivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(hours=23, minutes=59), attempts=30)
        make_due(delivery)
        alert_deliveries_due()
    delivery.refresh_from_db()
    assert delivery.status == Status.RETRYING
    assert delivery.next_attempt_at <= delivery.created_at + timedelta(hours=24)


def test_a_refused_destination_is_retried_not_sent(owner_ctx, fire, receiver, settings):
    webhook(owner_ctx, receiver)
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []  # e.g. the operator removed the allow-list after the channel was saved
    fire()
    delivery = AlertDelivery.objects.get()
    assert delivery.status == Status.RETRYING and "non-public" in delivery.last_error
    assert receiver.requests == []


def test_deliveries_of_a_disabled_channel_are_dropped(owner_ctx, fire, receiver):
    channel, _ = webhook(owner_ctx, receiver)
    receiver.fail_first(1)
    fire()
    AlertChannel.objects.filter(pk=channel.pk).update(enabled=False)
    make_due(AlertDelivery.objects.get())
    alert_deliveries_due()
    delivery = AlertDelivery.objects.get()
    assert delivery.status == Status.FAILED and "disabled" in delivery.last_error
    assert len(receiver.requests) == 1


def test_a_lost_task_message_is_picked_up(owner_ctx, org, receiver):
    webhook(owner_ctx, receiver)
    alert_fire(organization=org, kind="budget.threshold", dedupe_key="lost", payload=PAYLOAD)  # on_commit never runs
    delivery = AlertDelivery.objects.get()
    assert alert_deliveries_due() == 0  # fresh: its own task may still come
    AlertDelivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(minutes=3))
    assert alert_deliveries_due() == 1
    delivery.refresh_from_db()
    assert delivery.status == Status.SENT and len(receiver.requests) == 1


def test_a_claimed_delivery_is_not_attempted_twice(owner_ctx, org, receiver):
    webhook(owner_ctx, receiver)
    alert_fire(organization=org, kind="budget.threshold", dedupe_key="claim", payload=PAYLOAD)
    delivery = AlertDelivery.objects.get()
    now = timezone.now()
    assert alerts._claim(delivery.pk, now) is True
    assert alerts._claim(delivery.pk, now) is False  # a duplicate task message, or an overlapping periodic run
    assert alert_deliver(delivery_id=delivery.pk) is None
    assert receiver.requests == []


# --- Test alert ----------------------------------------------------------------------------------


def test_send_test_delivers_at_once_and_each_call_is_new(admin_ctx, receiver):
    channel, secret = webhook(admin_ctx, receiver)
    first = alert_send_test(actor=admin_ctx, channel=channel)
    second = alert_send_test(actor=admin_ctx, channel=channel)
    assert first.status == second.status == Status.SENT
    assert first.alert.dedupe_key != second.alert.dedupe_key
    assert [r.json()["type"] for r in receiver.requests] == ["test", "test"]
    documented_snippet()(secret, receiver.requests[0].headers, receiver.requests[0].body)


def test_a_failed_test_is_reported_and_changes_nothing(owner_ctx, receiver):
    channel, _ = alert_channel_create(actor=owner_ctx, name="Feishu", kind="feishu", target=receiver.url("/hook/tok"), secret="s3cret")
    receiver.answer(Reply(200, b'{"code":19021,"msg":"sign match fail"}'))
    delivery = alert_send_test(actor=owner_ctx, channel=channel)
    channel.refresh_from_db()
    assert delivery.status == Status.FAILED and "19021" in delivery.last_error and delivery.next_attempt_at is None
    assert channel.enabled


def test_send_test_needs_manage_budgets(org, member_of, owner_ctx, receiver):
    channel, _ = webhook(owner_ctx, receiver)
    ctx = OrgContext(organization=org, role=Role.MEMBER, user=member_of(org, Role.MEMBER).user)
    with pytest.raises(ApplicationError):
        alert_send_test(actor=ctx, channel=channel)
    assert receiver.requests == []


# --- Secrets never leak --------------------------------------------------------------------------


def test_no_secret_in_payloads_delivery_log_or_audit(owner_ctx, fire, smtp):
    canaries = ["SECcanary-dingtalk-7f3a9", "canary-feishu-91bc", "tok-canary-wecom-55d", "tok-canary-feishu-88e", "tok-canary-ding-13f"]
    with webhook_receiver() as receiver:
        # A hostile or chatty bot that echoes the URL it was called with (bot tokens, DingTalk sign) in its error.
        receiver.responder = lambda r: Reply(200, json.dumps({"code": 1, "msg": r.path, "errcode": 1, "errmsg": r.path}).encode())
        hook, hook_secret = webhook(owner_ctx, receiver)
        hook, rotated = alert_channel_rotate_secret(actor=owner_ctx, channel=hook)
        alert_channel_create(actor=owner_ctx, name="Ding", kind="dingtalk", target=receiver.url("/robot/send?access_token=tok-canary-ding-13f"), secret=canaries[0])
        feishu, _ = alert_channel_create(actor=owner_ctx, name="Feishu", kind="feishu", target=receiver.url("/hook/tok-canary-feishu-88e"), secret=canaries[1])
        wecom, _ = alert_channel_create(actor=owner_ctx, name="WeCom", kind="wecom", target=receiver.url("/send?key=tok-canary-wecom-55d"))
        alert_channel_update(actor=owner_ctx, channel=feishu, secret=canaries[1] + "-v2", target=receiver.url("/hook/tok-canary-feishu-88e-v2"))
        fire()
        alert_send_test(actor=owner_ctx, channel=wecom)
        for delivery in AlertDelivery.objects.all():
            make_due(delivery)
        alert_deliveries_due()
    secrets = canaries + [hook_secret, rotated]
    stored = json.dumps(
        [list(Alert.objects.values_list("payload", flat=True)), list(AlertDelivery.objects.values_list("last_error", flat=True)),
         list(AuditLog.objects.values("action", "target_label", "data", "actor_label"))],
        default=str,
    )
    assert AlertDelivery.objects.filter(last_error__contains="error 1").count() == 4  # the bots' errors were recorded
    for secret in secrets:
        assert secret not in stored, secret
        for mail in smtp.messages:
            assert secret not in mail["message"].as_string()
    assert AuditLog.objects.filter(action="alert_channel.rotate_secret").exists()


def test_scrub_removes_secrets_and_tokens_from_any_error_text(owner_ctx, receiver):
    channel, secret = alert_channel_create(actor=owner_ctx, name="Ding", kind="dingtalk", target=receiver.url("/robot/send?access_token=tok-1234"), secret="SECsecret-999")
    text = alerts._scrub(f"ConnectError: {channel.url()} refused, sign for SECsecret-999, access_token=tok-1234", channel)
    assert "tok-1234" not in text and "SECsecret-999" not in text and "ConnectError" in text


# --- Tasks and schedule --------------------------------------------------------------------------


def test_tasks_are_named_and_scheduled(owner_ctx, org, receiver):
    assert billing.tasks_alerts.alert_deliver.name == "billing.alert_deliver"
    assert billing.tasks_alerts.alert_deliveries_due.name == "billing.alert_deliveries_due"
    entry = next(e for e in celery_app.conf.beat_schedule.values() if e["task"] == "billing.alert_deliveries_due")
    assert entry["schedule"] == 30.0
    webhook(owner_ctx, receiver)
    alert_fire(organization=org, kind="budget.threshold", dedupe_key="task", payload=PAYLOAD)
    delivery = AlertDelivery.objects.get()
    billing.tasks_alerts.alert_deliver.apply(args=[delivery.pk])  # a task takes only the id
    delivery.refresh_from_db()
    assert delivery.status == Status.SENT



@pytest.mark.django_db(transaction=True)
def test_concurrent_fires_of_one_key_send_exactly_once(owner_ctx, org, smtp):
    """Many workers crossing the same threshold at once: one Alert, one email, one webhook."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    with webhook_receiver() as receiver:
        webhook(owner_ctx, receiver)
        alert_channel_create(actor=owner_ctx, name="Mail", kind="email", target="ops@example.com")
        barrier = Barrier(12)

        def worker(_):
            try:
                barrier.wait(timeout=10)
                return alert_fire(organization=org, kind="budget.threshold", dedupe_key="race", payload=PAYLOAD)
            finally:
                connection.close()

        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(worker, range(12)))
        assert sum(r is not None for r in results) == 1
        assert len(receiver.requests) == 1
    assert Alert.objects.count() == 1 and AlertDelivery.objects.filter(status=Status.SENT).count() == 2
    assert len(smtp.messages) == 1
