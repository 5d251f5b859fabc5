"""Bounded work per request outside the relay's hot path: request bodies outside /v1 are capped before
Django reads them (config/body_limit.py), and the REST API answers JSON nested too deeply with its JSON
error (accounts/api/parsers.py). The /v1 side is in tests/hardening/test_relay_bodies.py."""

import socket
from urllib.parse import urlsplit

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Role
from billing import estimator
from tests.accounts.factories import MembershipFactory


def _raw_request(server_url: str, head: str, body_parts=(), timeout: float = 10) -> tuple[int, bytes]:
    """Send a request by hand (a declared length it never sends, a chunked body); (status, answer)."""
    parts = urlsplit(server_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        try:
            for part in body_parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what it answered is below
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, answer


def _chunked(total: int, size: int = 64 * 1024):
    sent = 0
    while sent < total:
        yield b"%x\r\n%s\r\n" % (size, b"a" * size)
        sent += size
    yield b"0\r\n\r\n"


def test_a_huge_declared_body_to_the_login_page_is_refused_before_it_is_sent(relay_server, transactional_db):
    head = ("POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: 3000000000\r\nConnection: close\r\n\r\n")
    status, answer = _raw_request(relay_server.url, head, timeout=5)  # no body at all: a waiting server would time out
    assert status == 413 and b"at most" in answer


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(relay_server, transactional_db, settings):
    head = ("POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    status, _ = _raw_request(relay_server.url, head, _chunked(3 * settings.TOLLGATE_MAX_REQUEST_BYTES))
    assert status == 413


def test_small_bodies_pass(relay_server, transactional_db):
    body = b"username=a%40example.com&password=x"
    head = (f"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    status, _ = _raw_request(relay_server.url, head, [body])
    assert status == 403  # Django read it and its CSRF check answered


@pytest.mark.parametrize("path", ["/estimator/", "/api/estimate/"])
def test_the_estimator_takes_its_upload_and_no_more(relay_server, transactional_db, org, path):
    viewer = MembershipFactory(organization=org, role=Role.VIEWER).user
    client = Client()
    client.force_login(viewer)
    cookie = f"sessionid={client.cookies['sessionid'].value}"

    def upload(size: int) -> tuple[int, bytes]:
        boundary = "tollgateboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
                f"Content-Type: text/plain\r\n\r\n").encode() + b"a" * size + f"\r\n--{boundary}--\r\n".encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        return _raw_request(relay_server.url, head, [body])

    status, answer = upload(estimator.MAX_UPLOAD_BYTES + 1024 * 1024)
    assert status == 413
    if path.startswith("/api/"):
        assert b'"code": "request_too_large"' in answer
    status, _ = upload(2 * 1024 * 1024)  # over the default limit, within the estimator's
    assert status != 413


def test_json_nested_too_deeply_is_the_apis_json_error(org, owner):
    client = APIClient()
    client.force_login(owner)
    deep = "[" * 5000 + "]" * 5000
    response = client.post("/api/estimate/", data=deep, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "parse_error"
    response = client.post("/api/teams/", data='{"name": ' + deep + "}", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "parse_error"
