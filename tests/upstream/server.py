"""A real HTTP mock upstream on loopback that keeps its own ledger.

Runs an aiohttp server in a background thread. Each wire format adds its routes through
`add_routes(app, upstream)` in tests/upstream/<format>_routes.py. Behaviour is chosen by the
upstream model name, so a test configures a Deployment and needs no side channel:

  echo          normal answer (default for any unknown name)
  fail-<code>   answers HTTP <code> with the format's error body (429 adds Retry-After: 1)
  slow-<secs>   waits before answering (timeouts)
  silent        accepts the connection and never answers
  stall         streams two chunks then stalls forever
  reset         closes the connection without an answer
  nousage       normal answer but without any usage figures

`usage_override` makes the OpenAI routes report other usage figures (negative, absurd, not numbers).
Raw answers for any wire format (malformed bodies, errors inside a 200, streams that never end):
`upstream.can(name, Canned(...))` makes every request for upstream model `name` (from the JSON body,
or the path for Gemini and Azure) get exactly those bytes; `Canned.endless` is then repeated until the
client closes the connection. `upstream.canned_log` tells how many bytes went out and whether the
peer closed the connection.
"""

import asyncio
import contextvars
import itertools
import re
import threading
import time
from importlib import import_module
from dataclasses import dataclass, field

from aiohttp import web

GATEWAY_REQUEST_ID = contextvars.ContextVar("gateway_request_id", default="")

# Deterministic token accounting shared by all formats: the mock "tokenizer" counts words.
REPLY_WORDS = ["Hello", "from", "the", "mock", "upstream", "at", "your", "service", "today", "friend"]


def count_prompt_tokens(texts: list[str]) -> int:
    return sum(len(t.split()) for t in texts) + 3


@dataclass
class LedgerEntry:
    upstream_id: str
    wire: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    stream: bool
    completed: bool = False  # False while a stream is still being written (or was cut short)
    gateway_request_id: str = ""  # the x-tollgate-request-id the gateway sent


@dataclass
class Canned:
    """A raw answer: `chunks` are written as they are, then `endless` forever every `interval` seconds."""

    status: int = 200
    chunks: tuple[bytes, ...] = ()
    content_type: str = "text/event-stream"
    endless: bytes = b""
    interval: float = 0.0
    limit_seconds: float = 120.0  # a safety stop for a test that forgot to close


_PATH_MODEL = re.compile(r"/(?:models|deployments)/([^/:]+)")


@dataclass
class MockUpstream:
    host: str = "127.0.0.1"
    port: int = 0
    ledger: list[LedgerEntry] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)  # method, path, headers, json
    chunk_delay: float = 0.0
    usage_override: dict | None = None  # the OpenAI routes report this `usage` instead of the true one (reset() clears it)
    canned: dict[str, Canned] = field(default_factory=dict)
    canned_log: list[dict] = field(default_factory=list)
    balance_answers: dict[str, tuple[int, dict]] = field(default_factory=dict)  # path -> (status, JSON): catalog_routes
    # batch_routes: uploaded files, the providers' batches, and `batch_hold` (batches stay in progress while set)
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict] = field(default_factory=dict)
    batch_hold: bool = False
    batch_garbage: bool = False

    def can(self, name: str, answer: Canned) -> None:
        self.canned[name] = answer

    def __post_init__(self):
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop = None
        self._runner = None

    # -- used by the route modules --
    def next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids):06d}"

    def record(self, entry: LedgerEntry) -> LedgerEntry:
        entry.gateway_request_id = entry.gateway_request_id or GATEWAY_REQUEST_ID.get()
        with self._lock:
            self.ledger.append(entry)
        return entry

    async def behave(self, model: str):
        """Apply failure/latency behaviour named by the model; returns an error status or None."""
        if model.startswith("slow-"):
            await asyncio.sleep(float(model.split("-", 1)[1]))
        elif model == "silent":
            await asyncio.sleep(3600)
        elif model.startswith("fail-"):
            return int(model.split("-", 1)[1])
        return None

    # -- lifecycle --
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "MockUpstream":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.middlewares.append(self._log_middleware)
        for name in ("openai", "anthropic", "gemini", "azure", "catalog", "rerank", "batch"):
            import_module(f"tests.upstream.{name}_routes").add_routes(app, self)
        started = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="mock-upstream", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        except Exception:  # handlers left stalling on purpose ("silent", "stall") are simply abandoned
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def reset(self) -> None:
        with self._lock:
            self.ledger.clear()
            self.requests.clear()
            self.usage_override = None
            self.canned.clear()
            self.canned_log.clear()
            self.balance_answers.clear()
            self.files.clear()
            self.batches.clear()
            self.batch_hold = False
            self.batch_garbage = False

    @web.middleware
    async def _log_middleware(self, request, handler):
        try:
            body = await request.json() if request.can_read_body else None
        except Exception:
            body = None
        GATEWAY_REQUEST_ID.set(request.headers.get("x-tollgate-request-id", ""))
        with self._lock:
            self.requests.append({"method": request.method, "path": request.path, "query": dict(request.query), "headers": dict(request.headers), "json": body})
        path_model = _PATH_MODEL.search(request.path)
        name = str(body.get("model")) if isinstance(body, dict) and body.get("model") else path_model.group(1) if path_model else ""
        if name in self.canned:
            return await self._answer_canned(request, name, self.canned[name])
        return await handler(request)

    async def _answer_canned(self, request, name: str, canned: Canned):
        entry = {"name": name, "bytes": 0, "closed_by_peer": False, "finished": False}
        with self._lock:
            self.canned_log.append(entry)
        response = web.StreamResponse(status=canned.status, headers={"Content-Type": canned.content_type})
        await response.prepare(request)
        stop = time.monotonic() + canned.limit_seconds
        try:
            for chunk in canned.chunks:
                await response.write(chunk)
                entry["bytes"] += len(chunk)
            while canned.endless and time.monotonic() < stop:
                await response.write(canned.endless)
                entry["bytes"] += len(canned.endless)
                await asyncio.sleep(canned.interval)
            await response.write_eof()
            entry["finished"] = True
        except asyncio.CancelledError:
            entry["closed_by_peer"] = True
            raise
        except ConnectionError:  # the peer closed the connection: what the gateway must do to a runaway
            entry["closed_by_peer"] = True
        return response
