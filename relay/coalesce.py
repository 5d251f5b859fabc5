"""uvicorn's httptools protocol, with the writes of one event-loop turn sent as one.

uvicorn writes a response's status line and headers, then its body, as two transport writes, and
uvloop sends each at once: two send() system calls, and two TCP segments, for every answer that is
not streamed. Holding what a turn writes and sending it when the turn ends makes that one. A stream
is delayed by no more than the rest of the turn: what a task writes goes out as soon as it waits.

Run uvicorn with `--http relay.coalesce:HttpToolsProtocol` (Procfile, benchmarks). Measured in
benchmarks/README.md ("Write coalescing").
"""

import asyncio

from uvicorn.protocols.http import httptools_impl


class CoalescingTransport:
    """A transport whose writes wait for the end of the loop turn; everything else is the real one's."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()  # an answer written just before a close still goes out, as it would have
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))
