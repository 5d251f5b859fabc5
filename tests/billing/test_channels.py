"""One sender per channel kind, against real loopback servers; bodies and signatures per PROVIDERS.md §6."""

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from billing import channels
from billing.models import Alert, AlertChannel, AlertDelivery
from billing.webhooks import new_message_id, new_secret
from keys.encryption import encrypt
from tests.billing.factories import AlertChannelFactory
from tests.billing.receivers import Reply, smtp_server, use_smtp, webhook_receiver
from tests.billing.test_webhooks import documented_snippet

FEISHU_OK = Reply(200, json.dumps({"code": 0, "msg": "success", "data": {}}).encode())
DING_OK = Reply(200, b'{"errcode":0,"errmsg":"ok"}')

BUDGET_PAYLOAD = {
    "budget_id": 7, "budget": "Research monthly", "scope": "team", "period": "month",
    "period_start": "2026-03-01T00:00:00+00:00", "amount": "100.000000", "spent": "80.123456",
    "currency": "USD", "percent": "80.1", "hard": True, "threshold": 80,
}


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["127.0.0.1"]
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True
    settings.TOLLGATE_PUBLIC_URL = "https://tollgate.example.com"


def make(org, kind, target, *, secret="", alert_kind="budget.threshold", payload=None):
    channel = AlertChannelFactory(organization=org, name=f"{kind} channel", kind=kind, target=target, secret_encrypted=encrypt(secret))
    alert = Alert.objects.create(organization=org, kind=alert_kind, dedupe_key=f"k:{new_message_id()}", payload=payload or BUDGET_PAYLOAD)
    delivery = AlertDelivery.objects.create(organization=org, alert=alert, channel=channel, message_id=new_message_id())
    return channel, alert, delivery


def send(channel, alert, delivery):
    return channels.SENDERS[channel.kind](channel, alert, delivery)


def test_registry_covers_every_kind():
    assert set(channels.SENDERS) == set(AlertChannel.Kind.values)


# --- message text --------------------------------------------------------------------------------


def test_threshold_message_is_human_readable(org):
    channel, alert, _ = make(org, "email", "a@example.com")
    message = channels.alert_message(alert, channel)
    text = channels._plain(message)
    assert "Research monthly" in message.title and "80%" in message.title
    assert "$80.12 of $100.00 (80.1%)" in text
    assert "Team" in text and "Monthly, since 2026-03-01" in text
    assert "https://tollgate.example.com/" in text
    assert message.severity == "warning"


def test_forecast_message_names_the_date_in_the_org_time_zone(org):
    org.time_zone = "Asia/Shanghai"
    org.save()
    payload = {**BUDGET_PAYLOAD, "runs_out_at": "2026-03-20T18:00:00+00:00"}
    payload.pop("threshold")
    channel, alert, _ = make(org, "email", "a@example.com", alert_kind="budget.forecast", payload=payload)
    message = channels.alert_message(alert, channel)
    assert "2026-03-21" in message.title  # 02:00 the next day in Shanghai
    assert any("2026-03-21" in value for _, value in message.lines)


# --- email ---------------------------------------------------------------------------------------


def test_email_reaches_every_recipient_over_smtp(org, settings):
    with smtp_server() as smtp:
        use_smtp(settings, smtp)
        channel, alert, delivery = make(org, "email", "ops@example.com, cfo@example.com")
        assert send(channel, alert, delivery).ok
        (mail,) = smtp.messages
        assert sorted(mail["to"]) == ["cfo@example.com", "ops@example.com"]
        assert "Research monthly" in mail["message"]["Subject"]
        assert "$80.12 of $100.00 (80.1%)" in smtp.body()


# --- Standard Webhooks ---------------------------------------------------------------------------


def test_webhook_body_and_signature(org):
    secret = new_secret()
    with webhook_receiver() as receiver:
        channel, alert, delivery = make(org, "webhook", receiver.url(), secret=secret)
        outcome = send(channel, alert, delivery)
        assert outcome.ok and outcome.status_code == 200
        (request,) = receiver.requests
    assert request.headers["webhook-id"] == delivery.message_id
    assert request.headers["content-type"] == "application/json"
    documented_snippet()(secret, request.headers, request.body)
    body = request.json()
    assert body["type"] == "budget.threshold"
    assert body["data"] == BUDGET_PAYLOAD
    assert body["summary"].startswith("Tollgate · ") and "Spent: $80.12 of $100.00 (80.1%)" in body["summary"]
    assert body["timestamp"] == alert.created_at.isoformat()
    assert secret not in request.body.decode()


@pytest.mark.parametrize("status", [500, 302, 404])
def test_webhook_non_2xx_is_a_failure(org, status):
    with webhook_receiver(Reply(status, b"nope", {"Location": "http://127.0.0.1:1/"})) as receiver:
        channel, alert, delivery = make(org, "webhook", receiver.url(), secret=new_secret())
        outcome = send(channel, alert, delivery)
    assert not outcome.ok and outcome.status_code == status and outcome.error == f"HTTP {status}"
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_reported(org, status):
    with webhook_receiver(Reply(status, b"", {"Retry-After": "120"})) as receiver:
        channel, alert, delivery = make(org, "webhook", receiver.url(), secret=new_secret())
        outcome = send(channel, alert, delivery)
    assert not outcome.ok and outcome.retry_after == 120


# --- Feishu / Lark -------------------------------------------------------------------------------


def test_feishu_card_and_signature(org):
    secret = "feishu-canary-secret-123"
    with webhook_receiver(FEISHU_OK) as receiver:
        channel, alert, delivery = make(org, "feishu", receiver.url("/open-apis/bot/v2/hook/tok-abc"), secret=secret)
        before = int(time.time())
        outcome = send(channel, alert, delivery)
        (request,) = receiver.requests
    assert outcome.ok
    assert request.path == "/open-apis/bot/v2/hook/tok-abc"
    body = request.json()
    timestamp = int(body["timestamp"])
    assert isinstance(body["timestamp"], str) and before <= timestamp <= before + 5  # unix seconds
    # Documented formula: key = f"{timestamp}\n{secret}", message empty, base64 of the digest.
    expected = base64.b64encode(hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()
    assert body["sign"] == expected
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert "Research monthly" in card["header"]["title"]["content"]
    assert card["header"]["template"] == "orange"
    assert "$80.12 of $100.00 (80.1%)" in card["elements"][0]["text"]["content"]
    assert "https://tollgate.example.com/" in json.dumps(card)
    assert secret not in request.body.decode()


def test_feishu_without_secret_is_unsigned(org):
    with webhook_receiver(FEISHU_OK) as receiver:
        channel, alert, delivery = make(org, "feishu", receiver.url())
        assert send(channel, alert, delivery).ok
        body = receiver.requests[0].json()
    assert "sign" not in body and "timestamp" not in body


def test_feishu_user_text_cannot_mention_everyone(org):
    payload = {**BUDGET_PAYLOAD, "budget": 'x<at user_id="all">all</at>'}
    with webhook_receiver(FEISHU_OK) as receiver:
        channel, alert, delivery = make(org, "feishu", receiver.url(), payload=payload)
        send(channel, alert, delivery)
        text = receiver.requests[0].json()["card"]["elements"][0]["text"]["content"]
    assert "<at" not in text


@pytest.mark.parametrize("reply", [
    Reply(200, b'{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}'),
    Reply(200, b'{"code":9499,"msg":"Bad Request"}'),
    Reply(200, b"not json"),
    Reply(500, b'{"code":0}'),
])
def test_feishu_error_replies_are_failures(org, reply):
    with webhook_receiver(reply) as receiver:
        channel, alert, delivery = make(org, "feishu", receiver.url(), secret="s")
        outcome = send(channel, alert, delivery)
    assert not outcome.ok and outcome.error


def test_feishu_throttling_asks_for_a_later_retry(org):
    with webhook_receiver(Reply(200, b'{"code":11232,"msg":"frequency limited"}')) as receiver:
        channel, alert, delivery = make(org, "feishu", receiver.url())
        outcome = send(channel, alert, delivery)
    assert not outcome.ok and outcome.retry_after == 60 and "11232" in outcome.error


# --- DingTalk ------------------------------------------------------------------------------------


def test_dingtalk_markdown_and_signed_query(org):
    secret = "SECdingtalk-canary-456"
    with webhook_receiver(DING_OK) as receiver:
        channel, alert, delivery = make(org, "dingtalk", receiver.url("/robot/send?access_token=tok-xyz"), secret=secret)
        before = int(time.time() * 1000)
        outcome = send(channel, alert, delivery)
        (request,) = receiver.requests
    assert outcome.ok
    raw_query = dict(pair.split("=", 1) for pair in urlsplit(request.path).query.split("&"))
    assert raw_query["access_token"] == "tok-xyz"
    timestamp = int(raw_query["timestamp"])
    assert before <= timestamp <= before + 5000  # milliseconds
    # Documented formula: HMAC-SHA256(key=secret, msg=f"{timestamp}\n{secret}") -> base64 -> URL-encode.
    digest = base64.b64encode(hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()).decode()
    assert parse_qs(urlsplit(request.path).query)["sign"] == [digest]
    assert "+" not in raw_query["sign"] and "/" not in raw_query["sign"] and "=" not in raw_query["sign"]  # encoded
    body = request.json()
    assert body["msgtype"] == "markdown"
    assert "Research monthly" in body["markdown"]["title"]
    assert "$80.12 of $100.00 (80.1%)" in body["markdown"]["text"]
    assert secret not in request.body.decode() and secret not in request.path


@pytest.mark.parametrize("reply, retry_after", [
    (Reply(200, b'{"errcode":310000,"errmsg":"sign not match"}'), None),
    (Reply(200, b'{"errcode":130101,"errmsg":"send too fast"}'), 600),
    (Reply(200, b"{}"), None),
])
def test_dingtalk_error_replies_are_failures(org, reply, retry_after):
    with webhook_receiver(reply) as receiver:
        channel, alert, delivery = make(org, "dingtalk", receiver.url("/robot/send?access_token=t"), secret="SECx")
        outcome = send(channel, alert, delivery)
    assert not outcome.ok and outcome.retry_after == retry_after


# --- WeCom ---------------------------------------------------------------------------------------


def test_wecom_markdown(org):
    with webhook_receiver(DING_OK) as receiver:
        channel, alert, delivery = make(org, "wecom", receiver.url("/cgi-bin/webhook/send?key=wecom-key"))
        outcome = send(channel, alert, delivery)
        (request,) = receiver.requests
    assert outcome.ok
    assert request.path == "/cgi-bin/webhook/send?key=wecom-key"
    body = request.json()
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert "Research monthly" in content and "$80.12 of $100.00 (80.1%)" in content
    assert len(content.encode()) <= 4096


def test_wecom_long_content_is_cut_to_its_limit(org):
    payload = {**BUDGET_PAYLOAD, "budget": "预算" * 3000}
    with webhook_receiver(DING_OK) as receiver:
        channel, alert, delivery = make(org, "wecom", receiver.url("/cgi-bin/webhook/send?key=k"), payload=payload)
        send(channel, alert, delivery)
        assert len(receiver.requests[0].json()["markdown"]["content"].encode()) <= 4096


def test_wecom_error_reply_is_a_failure(org):
    with webhook_receiver(Reply(200, b'{"errcode":93000,"errmsg":"invalid webhook url"}')) as receiver:
        channel, alert, delivery = make(org, "wecom", receiver.url("/cgi-bin/webhook/send?key=k"))
        outcome = send(channel, alert, delivery)
    assert not outcome.ok and "93000" in outcome.error and "key=k" not in outcome.error


# --- the organization's language, amounts by magnitude ----------------------------------------------------

SMALL_BUDGET = {**BUDGET_PAYLOAD, "amount": "0.010000", "spent": "0.004200", "percent": "42.0", "threshold": 50, "currency": "CNY"}


def test_small_amounts_keep_their_digits(org):
    channel, alert, _ = make(org, "email", "a@example.com", payload=SMALL_BUDGET)
    text = channels._plain(channels.alert_message(alert, channel))
    assert "¥0.0042 of ¥0.01 (42.0%)" in text and "0.00 of" not in text


def test_every_channel_speaks_the_organization_language(org, mailoutbox):
    """Email, the webhook's summary and the three bots are written in zh-Hans for a Chinese organization,
    whatever language the worker runs in (alerts._attempt overrides it)."""
    from billing import alerts

    org.language = "zh-hans"
    org.save()
    texts = {}
    replies = {"webhook": Reply(200, b""), "feishu": FEISHU_OK, "dingtalk": DING_OK, "wecom": DING_OK}
    for kind, reply in replies.items():
        with webhook_receiver(reply) as receiver:
            _channel, _alert, delivery = make(org, kind, receiver.url(), secret=new_secret() if kind == "webhook" else "",
                                              payload=SMALL_BUDGET)
            assert alerts.alert_deliver(delivery_id=delivery.pk).status == AlertDelivery.Status.SENT
            texts[kind] = receiver.requests[0].body.decode()
    _channel, _alert, delivery = make(org, "email", "ops@example.com", payload=SMALL_BUDGET)
    assert alerts.alert_deliver(delivery_id=delivery.pk).status == AlertDelivery.Status.SENT
    (email,) = mailoutbox
    texts["email"] = email.subject + "\n" + email.body
    assert json.loads(texts["webhook"])["summary"].startswith("Tollgate · ")
    for kind, text in texts.items():
        text = json.loads(text)["summary"] if kind == "webhook" else text
        assert "预算“Research monthly”已达到 50%" in text, (kind, text)
        assert "已花费" in text and "¥0.0042 / ¥0.01（42.0%）" in text, (kind, text)
        for english in ("Spent", "Period", "Open Tollgate", "Budget “", " of ¥"):
            assert english not in text, (kind, english, text)


def test_an_english_organization_gets_english_even_from_a_chinese_request(org, mailoutbox):
    from django.utils import translation

    from billing import alerts

    _channel, _alert, delivery = make(org, "email", "ops@example.com")
    with translation.override("zh-hans"):
        alerts.alert_deliver(delivery_id=delivery.pk)
    assert "Budget “Research monthly” reached 80%" in mailoutbox[0].subject
