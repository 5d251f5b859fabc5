"""The relay's lean ASGI application for /v1/* (outside Django's request cycle; DESIGN.md).

This module owns the connection: reading the request, writing responses and errors, and the
lifespan of the per-process runtime. The request flow itself is relay.pipeline.
"""

import logging
import secrets

from relay import pipeline, probes
from relay.exchange import ClientGone
from relay.runtime import Runtime
from wire.errors import RelayError, RequestTooLarge

log = logging.getLogger(__name__)

JSON_HEADERS = [(b"content-type", b"application/json")]


class Connection:
    """One HTTP request/response on the ASGI interface."""

    __slots__ = ("scope", "receive", "send", "request_id", "headers", "started", "captured")

    def __init__(self, scope, receive, send):
        self.scope, self.receive, self.send = scope, receive, send
        self.request_id = "req_" + secrets.token_hex(12)
        self.headers = {name: value for name, value in scope["headers"]}
        self.started = False
        self.captured: list | None = None  # set to a list to keep a copy of the response (Idempotency-Key)

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None

    async def read_body(self, limit: int) -> bytes:
        declared = self.headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"The request body exceeds the limit of {limit} bytes.")
        chunks, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # chunked uploads are cut off as soon as they pass the limit
                raise RequestTooLarge(f"The request body exceeds the limit of {limit} bytes.")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        if self.captured is not None:
            self.captured += [status, [h for h in headers if h[0] != b"content-length"]]
        await self.send({"type": "http.response.start", "status": status, "headers": [*headers, (b"x-request-id", self.request_id.encode())]})

    async def respond(self, status: int, body: bytes, headers=JSON_HEADERS) -> None:
        await self.start(status, [*headers, (b"content-length", str(len(body)).encode())])
        if self.captured is not None:
            self.captured.append(body)
        await self.send({"type": "http.response.body", "body": body})

    async def respond_error(self, error: RelayError, extra_headers=()) -> None:
        headers = [*JSON_HEADERS, *extra_headers, *((k.encode(), v.encode()) for k, v in error.headers.items())]
        await self.respond(error.status, error.body(), headers)

    async def write(self, chunk: bytes) -> None:
        if self.captured is not None:
            self.captured.append(chunk)
        await self.send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def end(self) -> None:
        await self.send({"type": "http.response.body", "body": b""})


class RelayApp:
    def __init__(self):
        self.runtime: Runtime | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        if self.runtime is None:  # servers started without lifespan support
            self.runtime = Runtime()
            await self.runtime.start()
        if scope["path"] in probes.PATHS:
            return await probes.handle(self.runtime, Connection(scope, receive, send), scope["path"])
        await pipeline.handle(self.runtime, Connection(scope, receive, send))

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.runtime = Runtime()
                    await self.runtime.start()
                except Exception as exc:
                    log.exception("relay start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.runtime is not None:
                    await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
