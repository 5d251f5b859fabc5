"""Real loopback servers for alert tests: an SMTP server (aiosmtpd) and an HTTP(S) webhook receiver.

Both record what they receive. The webhook receiver answers from a script (`fail_first`,
`answer`) and then with its default reply, so retries can be driven without mocking HTTP.
"""

import datetime
import email
import email.policy
import json
import socket
import ssl
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- SMTP ----------------------------------------------------------------------------------------


class _MailHandler:
    def __init__(self, messages: list):
        self.messages = messages

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "message": message})
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list = field(default_factory=list)

    def body(self, index: int = -1) -> str:
        return self.messages[index]["message"].get_body(preferencelist=("plain",)).get_content()


@contextmanager
def smtp_server():
    """A real SMTP server on 127.0.0.1; point Django at it with `use_smtp(settings, server)`."""
    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(_MailHandler(server.messages), hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


def use_smtp(settings, server: SmtpServer) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = server.host, server.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False


# --- Webhook receiver ----------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str  # with the query string
    headers: dict  # lower-cased names
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)


class WebhookReceiver:
    def __init__(self, default: Reply):
        self.requests: list[Received] = []
        self.script: list[Reply] = []
        self.default = default
        self.responder = None  # optional callable(Received) -> Reply, used after the script
        self.sni: list[str | None] = []
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "/hook", *, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def fail_first(self, n: int, status: int = 500, body: bytes = b"", headers: dict | None = None) -> None:
        self.answer(*[Reply(status, body, headers or {}) for _ in range(n)])

    def answer(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def _next_reply(self, request: Received) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self.script:
                return self.script.pop(0)
        return self.responder(request) if self.responder else self.default


def _handler_for(receiver: WebhookReceiver):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            reply = receiver._next_reply(request)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST

        def log_message(self, *args):
            pass

    return Handler


@contextmanager
def webhook_receiver(default: Reply | None = None, *, tls: ssl.SSLContext | None = None):
    """An HTTP server on 127.0.0.1 (HTTPS with `tls`) that records every request."""
    receiver = WebhookReceiver(default or Reply(200, b"ok"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver))
    server.daemon_threads = True
    if tls is not None:
        tls.sni_callback = lambda sock, name, ctx: receiver.sni.append(name)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver.server = server
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def self_signed_tls(hostname: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting only this certificate) for `hostname`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="tg-tls-"))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cafile=str(folder / "cert.pem"))
    return server, client
