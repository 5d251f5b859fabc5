"""keys.egress: which addresses and URLs the server may fetch (provider base URLs, webhooks)."""

import socket

import pytest

from accounts.errors import ApplicationError
from keys.egress import check_url, is_public_address


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


@pytest.fixture
def resolve(monkeypatch):
    """resolve({"host": ["addr", ...]}): a fake DNS for check_url (tests never reach the network)."""

    def install(table):
        def getaddrinfo(host, port, *args, **kwargs):
            if host not in table:
                raise socket.gaierror("unknown host")
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    return install


@pytest.fixture(autouse=True)
def _egress_settings(settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = False


def test_public_https_url_is_allowed(resolve):
    resolve({"api.example.com": ["93.184.216.34", "2606:2800:220:1::1"]})
    assert check_url("https://api.example.com/v1", field="base_url") == ["2606:2800:220:1::1", "93.184.216.34"]


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
        "https://unknown.example/",  # does not resolve
        "https://internal.example/",  # resolves to a private address
        "https://mixed.example/",  # one public, one private address: refused
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1/",
        "https://10.0.0.1/",
        "https://[::ffff:127.0.0.1]/",
    ],
)
def test_unsafe_urls_are_field_errors(resolve, url):
    resolve({
        "api.example.com": ["93.184.216.34"], "internal.example": ["10.1.2.3"], "mixed.example": ["93.184.216.34", "127.0.0.1"],
        "169.254.169.254": ["169.254.169.254"], "127.0.0.1": ["127.0.0.1"], "10.0.0.1": ["10.0.0.1"],
        "::ffff:127.0.0.1": ["::ffff:127.0.0.1"],
    })
    with pytest.raises(ApplicationError) as exc:
        check_url(url, field="base_url")
    assert exc.value.field == "base_url" and exc.value.status == 400


def test_allow_listed_host_skips_the_address_check(resolve, settings):
    resolve({"llm.intranet": ["10.0.0.7"]})
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["LLM.intranet"]
    assert check_url("https://llm.intranet/v1", field="base_url") == []
    # The scheme is still checked for allow-listed hosts.
    with pytest.raises(ApplicationError):
        check_url("file://llm.intranet/etc/passwd", field="base_url")


def test_plain_http_when_allowed(resolve, settings):
    resolve({"api.example.com": ["93.184.216.34"], "127.0.0.1": ["127.0.0.1"]})
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True
    assert check_url("http://api.example.com/", field="url") == ["93.184.216.34"]
    with pytest.raises(ApplicationError):
        check_url("http://127.0.0.1:8080/", field="url")
