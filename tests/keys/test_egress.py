"""keys.egress and wire.addresses: which addresses and URLs the server may fetch (provider base URLs, webhooks)."""

import socket

import pytest

from accounts.errors import ApplicationError
from keys.egress import check_url, is_public_address
from wire import addresses


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),  # loopback
        ("127.255.255.254", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:169.254.169.254", False),
        ("10.0.0.1", False),  # private
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("fc00::1", False),
        ("fd00:ec2::254", False),  # AWS metadata over IPv6
        ("169.254.169.254", False),  # link-local: cloud metadata
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("0.0.0.0", False),
        ("::", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("224.0.0.1", False),  # multicast
        ("ff02::1", False),
        ("255.255.255.255", False),
        ("240.0.0.1", False),  # reserved
        ("192.0.2.1", False),  # documentation
        ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo around a non-public address
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(address) is public
    assert addresses.is_public_address(address) is public  # the Django-free module the relay shares


@pytest.fixture(autouse=True)
def _egress_settings(settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = False


@pytest.fixture
def no_dns(monkeypatch):
    """Any lookup fails the test: save-time checks must work offline and under split DNS."""

    def getaddrinfo(host, *args, **kwargs):
        raise AssertionError(f"looked up {host!r} at save time")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/v1",
        "https://provider.invalid/v1",  # does not resolve (offline, split DNS): checked when connecting
        "https://internal.example/",  # may resolve to a private address: checked when connecting
        "https://93.184.216.34/v1",
        "https://[2606:2800:220:1::1]/v1",
        "https://open.feishu.cn/open-apis/bot/v2/hook/0123456789abcdef",
    ],
)
def test_save_time_check_needs_no_dns(no_dns, url):
    assert check_url(url, field="base_url") is None


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com/v1",  # plain HTTP when not allowed
        "file:///etc/passwd",
        "gopher://api.example.com/_x",
        "ftp://api.example.com/",
        "https://user:secret@api.example.com/",
        "https:///no-host",
        "https://[::1",  # malformed
        "https://api.example.com:99999/",  # port out of range
        "https://api.example.com/a\tb",  # urlsplit would drop the tab
    ],
)
def test_malformed_urls_are_field_errors(no_dns, url):
    with pytest.raises(ApplicationError) as exc:
        check_url(url, field="base_url")
    assert exc.value.field == "base_url" and exc.value.status == 400
    assert "TOLLGATE_EGRESS_ALLOW_HOSTS" not in exc.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1/",
        "https://127.1/",  # short, hexadecimal and decimal forms of 127.0.0.1
        "https://0x7f.0.0.1/",
        "https://2130706433/",
        "https://10.0.0.1/",
        "https://[::ffff:127.0.0.1]/",
        "https://[fd00:ec2::254]/",
        "https://0.0.0.0/",
        "https://localhost/",  # names that never reach a public address
        "https://LOCALHOST./v1",
        "https://api.localhost/",
        "https://printer.local/",
        "https://metadata.google.internal/",
        "https://nas.home.arpa/",
    ],
)
def test_non_public_hosts_are_refused_without_a_lookup_and_name_the_allow_list(no_dns, url):
    with pytest.raises(ApplicationError) as exc:
        check_url(url, field="target")
    assert exc.value.field == "target" and exc.value.status == 400
    assert "TOLLGATE_EGRESS_ALLOW_HOSTS" in exc.value.message and "non-public" in exc.value.message


@pytest.mark.parametrize("listed", ["LLM.intranet", "llm.intranet.", "llm.INTRANET"])
@pytest.mark.parametrize("url", ["https://llm.intranet/v1", "https://LLM.Intranet./v1"])
def test_allow_listed_host_matches_case_insensitively_and_with_a_trailing_dot(no_dns, settings, listed, url):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = [listed]
    assert check_url(url, field="base_url") is None
    # The scheme is still checked for allow-listed hosts.
    with pytest.raises(ApplicationError):
        check_url("file://llm.intranet/etc/passwd", field="base_url")


def test_allow_listed_addresses_and_local_names(no_dns, settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["10.0.0.7", "ollama.local"]
    assert check_url("https://10.0.0.7/v1", field="base_url") is None
    assert check_url("https://Ollama.Local/v1", field="base_url") is None
    with pytest.raises(ApplicationError):
        check_url("https://10.0.0.8/v1", field="base_url")


def test_plain_http_when_allowed(no_dns, settings):
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True
    assert check_url("http://api.example.com/", field="url") is None
    with pytest.raises(ApplicationError):
        check_url("http://127.0.0.1:8080/", field="url")


# --- wire.addresses: the pure rules the relay's connector shares ---------------------------------------


@pytest.mark.parametrize(
    ("host", "address"),
    [("127.0.0.1", "127.0.0.1"), ("127.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("2130706433", "127.0.0.1"),
     ("[::1]", "::1"), ("fe80::1%eth0", "fe80::1"), ("10.0.0.1.", "10.0.0.1"),
     ("api.example.com", None), ("1e100.net", None), ("cafe", None), ("123.example", None)],
)
def test_literal_address(host, address):
    result = addresses.literal_address(host)
    assert (str(result) if result is not None else None) == address


def test_host_allow_listed_and_local_names():
    assert addresses.host_allow_listed("API.Example.com.", ["api.example.com"])
    assert addresses.host_allow_listed("[::1]", ["::1"])
    assert not addresses.host_allow_listed("evil-api.example.com", ["api.example.com"])
    assert not addresses.host_allow_listed("", [""])
    assert addresses.is_local_name("LocalHost.") and addresses.is_local_name("x.internal")
    assert not addresses.is_local_name("localhost.example.com") and not addresses.is_local_name("internal.example")
