"""Standard Webhooks signing (billing.webhooks) and the receiver snippet documented in its docstring."""

import base64
import hashlib
import hmac
import textwrap
import time

import pytest

from billing import webhooks
from billing.webhooks import WebhookVerificationError, new_secret, sign, signature_headers, verify


def documented_snippet():
    """The receiver's verification function, exactly as the module docstring (and the README) shows it."""
    doc = webhooks.__doc__
    code = doc.split(".. code-block:: python", 1)[1].split("\nAnswer 2xx", 1)[0]
    namespace = {}
    exec(textwrap.dedent(code), namespace)  # noqa: S102 - our own documentation
    return namespace["verify_tollgate_webhook"]


def independent_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret[len("whsec_"):])
    return "v1," + base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()).decode()


def test_new_secret_format():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert new_secret() != secret
    assert len(webhooks.secret_key(new_secret(24))) == 24


@pytest.mark.parametrize("bad", ["", "abc", "whsec_", "whsec_!!!notbase64", "whsec_" + base64.b64encode(b"short").decode(),
                                 "whsec_" + base64.b64encode(b"x" * 65).decode()])
def test_secret_key_rejects_malformed_secrets(bad):
    with pytest.raises(ValueError):
        webhooks.secret_key(bad)


def test_message_ids_have_no_dots():
    ids = {webhooks.new_message_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("msg_") and "." not in i for i in ids)
    with pytest.raises(ValueError):
        signature_headers([new_secret()], "msg.1", b"{}")


def test_reference_vector():
    # The example in the Standard Webhooks spec / reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}') == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_sign_matches_the_formula():
    secret, body = new_secret(), b'{"type":"test","data":{}}'
    assert sign(secret, "msg_abc", 1700000000, body) == independent_signature(secret, "msg_abc", 1700000000, body)


def test_headers_carry_one_signature_per_secret_and_either_verifies():
    current, previous, body = new_secret(), new_secret(), b'{"x":1}'
    headers = signature_headers([current, previous], "msg_1", body)
    assert headers["webhook-id"] == "msg_1"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    first, second = headers["webhook-signature"].split(" ")
    ts = int(headers["webhook-timestamp"])
    assert first == independent_signature(current, "msg_1", ts, body)
    assert second == independent_signature(previous, "msg_1", ts, body)
    verify([current], headers, body)
    verify([previous], headers, body)
    verify([new_secret(), previous], headers, body)
    snippet = documented_snippet()
    snippet(current, headers, body)
    snippet(previous, headers, body)


def test_empty_secrets_are_skipped():
    secret = new_secret()
    headers = signature_headers([secret, ""], "msg_1", b"{}")
    assert " " not in headers["webhook-signature"]
    with pytest.raises(ValueError):
        signature_headers(["", ""], "msg_1", b"{}")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),  # body changed
        lambda h, b: ({**h, "webhook-id": "msg_other"}, b),  # id changed
        lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, b),
        lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b),  # unknown version
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
        lambda h, b: ({**h, "webhook-timestamp": "soon"}, b),
    ],
)
def test_verify_rejects_tampering(tamper):
    secret, body = new_secret(), b'{"x":1}'
    headers, body = tamper(signature_headers([secret], "msg_1", body), body)
    with pytest.raises(WebhookVerificationError):
        verify([secret], headers, body)
    with pytest.raises((ValueError, KeyError)):
        documented_snippet()(secret, headers, body)


def test_verify_rejects_a_wrong_secret():
    body = b"{}"
    headers = signature_headers([new_secret()], "msg_1", body)
    with pytest.raises(WebhookVerificationError):
        verify([new_secret()], headers, body)
    with pytest.raises(ValueError):
        documented_snippet()(new_secret(), headers, body)


@pytest.mark.parametrize("offset, ok", [(-299, True), (299, True), (-301, False), (301, False)])
def test_timestamp_tolerance(offset, ok):
    secret, body = new_secret(), b"{}"
    now = time.time()
    headers = signature_headers([secret], "msg_1", body, timestamp=int(now) + offset)
    if ok:
        verify([secret], headers, body, now=now)
    else:
        with pytest.raises(WebhookVerificationError):
            verify([secret], headers, body, now=now)


def test_header_names_are_case_insensitive():
    secret, body = new_secret(), b"{}"
    headers = {k.title(): v for k, v in signature_headers([secret], "msg_1", body).items()}
    verify([secret], headers, body)
    documented_snippet()(secret, headers, body)


def test_hostile_header_bytes_are_a_plain_rejection():
    secret, body = new_secret(), b"{}"
    headers = {**signature_headers([secret], "msg_1", body), "webhook-signature": "v1,ÿÿÿ"}
    with pytest.raises(WebhookVerificationError):
        verify([secret], headers, body)
    with pytest.raises(ValueError):
        documented_snippet()(secret, headers, body)
