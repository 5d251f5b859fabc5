"""keys.egress.fetch/post_json: the one client for user-supplied URLs, against real loopback servers."""

import socket
import time

import pytest

from keys import egress
from keys.egress import EgressFailed, EgressRefused, post_json
from tests.billing.receivers import Reply, self_signed_tls, webhook_receiver


@pytest.fixture
def receiver():
    with webhook_receiver() as r:
        yield r


@pytest.fixture
def loopback_allowed(settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["127.0.0.1"]
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True


@pytest.fixture
def nothing_allowed(settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True  # so that refusals below are about addresses, not the scheme


@pytest.fixture
def fake_dns(monkeypatch):
    """Resolve chosen names to chosen addresses (everything else as usual) and count the lookups."""
    real = socket.getaddrinfo
    table: dict[str, list[str]] = {}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        if host in table:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table, lookups


def test_posts_to_an_allow_listed_loopback_host(loopback_allowed, receiver):
    status, body = post_json(receiver.url("/hook?x=1"), b'{"a":1}', {"X-Test": "yes"})
    assert (status, body) == (200, b"ok")
    (request,) = receiver.requests
    assert request.path == "/hook?x=1"
    assert request.body == b'{"a":1}'
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-test"] == "yes"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://[fd00:ec2::254]/latest/meta-data/",  # AWS IPv6 metadata (unique local)
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://0.0.0.0:{port}/",
        "http://127.0.0.1:{port}/",
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",  # IPv4-mapped IPv6
        "http://0x7f000001:{port}/",  # odd encodings of 127.0.0.1
        "http://2130706433:{port}/",
        "http://127.1:{port}/",
        "http://localhost:{port}/",  # a DNS name that resolves to loopback
        "file:///etc/passwd",
        "gopher://127.0.0.1:{port}/_GET",
        "ftp://127.0.0.1:{port}/",
        "http://user:pw@127.0.0.1:{port}/",
    ],
)
def test_refuses_non_public_destinations(nothing_allowed, receiver, url):
    with pytest.raises(EgressRefused) as info:
        post_json(url.format(port=receiver.port), b"{}", {})
    assert info.value.code == "egress_refused" and info.value.status == 400
    assert receiver.requests == []


def test_a_name_resolving_to_a_private_address_is_refused_naming_the_allow_list(nothing_allowed, fake_dns, receiver):
    """Saving accepts any name (no DNS then); connecting resolves it, and the refusal says what would allow it."""
    table, _ = fake_dns
    table["llm.corp.example"] = ["10.1.2.3"]
    with pytest.raises(EgressRefused) as info:
        post_json(f"http://llm.corp.example:{receiver.port}/v1", b"{}", {})
    message = info.value.message
    assert "llm.corp.example" in message and "10.1.2.3" in message and "TOLLGATE_EGRESS_ALLOW_HOSTS" in message


def test_an_unresolvable_name_fails_clearly(nothing_allowed, receiver):
    with pytest.raises(EgressFailed) as info:
        post_json("http://no-such-host.invalid/", b"{}", {})
    assert "no-such-host.invalid" in info.value.message and "does not resolve" in info.value.message


@pytest.mark.parametrize("listed", ["LOCALHOST", "localhost.", "LocalHost."])
def test_the_allow_list_matches_case_insensitively_and_with_a_trailing_dot(settings, receiver, listed):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = [listed]
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True
    status, _ = post_json(f"http://Localhost:{receiver.port}/hook", b"{}", {})
    assert status == 200 and len(receiver.requests) == 1


def test_refuses_plain_http_unless_allowed(settings, receiver):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["127.0.0.1"]
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = False
    with pytest.raises(EgressRefused):
        post_json(receiver.url(), b"{}", {})
    assert receiver.requests == []


def test_every_resolved_address_must_be_public(nothing_allowed, fake_dns, receiver):
    table, _ = fake_dns
    table["mixed.example.test"] = ["93.184.216.34", "127.0.0.1"]
    with pytest.raises(EgressRefused):
        post_json(f"http://mixed.example.test:{receiver.port}/", b"{}", {})
    assert receiver.requests == []


def test_connection_is_pinned_to_the_checked_address(nothing_allowed, fake_dns, monkeypatch, receiver):
    """The name is resolved once, by the check; the connection goes to that address with the original Host."""
    table, lookups = fake_dns
    table["hooks.example.test"] = ["127.0.0.1"]
    monkeypatch.setattr(egress, "is_public_address", lambda address: address == "127.0.0.1")  # pretend it is public
    status, _ = post_json(f"http://hooks.example.test:{receiver.port}/hook", b"{}", {})
    assert status == 200
    assert lookups.count("hooks.example.test") == 1  # the HTTP library never resolved it again (no rebinding window)
    assert receiver.requests[0].headers["host"] == f"hooks.example.test:{receiver.port}"


def test_https_pinned_connection_sends_sni_and_checks_the_certificate(nothing_allowed, fake_dns, monkeypatch):
    table, _ = fake_dns
    table["hooks.example.test"] = table["wrong.example.test"] = ["127.0.0.1"]
    monkeypatch.setattr(egress, "is_public_address", lambda address: address == "127.0.0.1")
    server_tls, client_tls = self_signed_tls("hooks.example.test")
    monkeypatch.setattr(egress, "_ssl_context", lambda: client_tls)
    with webhook_receiver(tls=server_tls) as receiver:
        status, body = post_json(receiver.url(host="hooks.example.test", scheme="https"), b"{}", {})
        assert (status, body) == (200, b"ok")
        assert receiver.sni == ["hooks.example.test"]
        assert receiver.requests[0].headers["host"] == f"hooks.example.test:{receiver.port}"
        # Same address, other name: the certificate does not match, so nothing is sent.
        with pytest.raises(EgressFailed) as info:
            post_json(receiver.url("/secret-token", host="wrong.example.test", scheme="https"), b"{}", {})
        assert "secret-token" not in info.value.message
        assert len(receiver.requests) == 1


def test_redirects_are_returned_not_followed(loopback_allowed, receiver):
    receiver.answer(Reply(302, b"", {"Location": receiver.url("/elsewhere")}))
    status, _ = post_json(receiver.url(), b"{}", {})
    assert status == 302
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_response_body_is_capped(loopback_allowed, receiver):
    receiver.answer(Reply(200, b"x" * 100_000))
    status, body = post_json(receiver.url(), b"{}", {})
    assert status == 200 and body == b"x" * 2048


def test_silent_server_times_out(loopback_allowed):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the TCP connection, never answers
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(EgressFailed):
            post_json(f"http://127.0.0.1:{port}/hook", b"{}", {}, timeout=0.5)
        assert time.monotonic() - started < 3


def test_connection_refused_is_a_clear_failure(loopback_allowed):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening
        with pytest.raises(EgressFailed) as info:
            post_json(f"http://127.0.0.1:{port}/token123", b"{}", {})
    assert info.value.status == 502 and "token123" not in info.value.message
