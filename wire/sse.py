"""Server-sent events: an incremental parser with a line cap, and the encoders for OpenAI chunks and
in-stream errors."""

from dataclasses import dataclass

import orjson

from wire.errors import UpstreamError


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: bytes


DONE = b"data: [DONE]\n\n"


class SSEParser:
    """Feed raw bytes as they arrive; get complete events back. Buffers only a partial event.

    A single line longer than `max_line` aborts the stream: a runaway upstream must not be able to
    grow our memory without bound.
    """

    def __init__(self, max_line: int = 1024 * 1024):
        self._buffer = b""
        self._event: str | None = None
        self._data: list[bytes] = []
        self._max_line = max_line

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        events = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > self._max_line:
                    raise UpstreamError("Upstream sent an oversized stream line.", retryable=False)
                return events
            line = self._buffer[:newline].rstrip(b"\r")
            self._buffer = self._buffer[newline + 1 :]
            if not line:
                if self._data:
                    events.append(SSEEvent(self._event, b"\n".join(self._data)))
                self._event, self._data = None, []
            elif line.startswith(b"data:"):
                self._data.append(line[5:].lstrip(b" "))
            elif line.startswith(b"event:"):
                self._event = line[6:].strip().decode("utf-8", "replace")
            # comments (":") and other fields (id, retry) are not needed

    def close(self) -> list[SSEEvent]:
        """End of stream: a final event without its blank line still counts."""
        events = self.feed(b"\n\n") if (self._buffer.strip() or self._data) else []
        return events


def encode_chunk(chunk: dict) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def encode_error(error: Exception, stream_id: str | None = None) -> bytes:
    """An error after the first byte: OpenAI's SDK raises on an `error` object in a data line. It carries
    the stream's id, like every chunk Tollgate adds to a stream."""
    message = getattr(error, "message", "The upstream stream failed.")
    code = getattr(error, "code", "upstream_error")
    kind = getattr(error, "type", "api_error")
    event = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    if stream_id:
        event = {"id": stream_id, **event}
    return b"data: " + orjson.dumps(event) + b"\n\n"
