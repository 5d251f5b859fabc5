"""The meter that bounds a stream's output (the SSE parser and encoders are wire.sse)."""

import asyncio

from relay.record import INLINE_COUNT_CHARS, stream_text
from wire import tokens
from wire.errors import UpstreamError


class OutputLimitExceeded(UpstreamError):
    code = "output_limit_exceeded"

    def __init__(self, ceiling: int):
        super().__init__(
            f"The upstream kept generating past what the request allowed ({ceiling} output tokens with the "
            "gateway's margin); the stream was stopped and only what was delivered is billed.",
            retryable=False,
        )


# A stream may deliver its output allowance plus this margin (README "Budgets and limits").
OUTPUT_MARGIN_DIVISOR = 4  # +25 %
OUTPUT_MARGIN_TOKENS = 16


def output_ceiling(allowance: int) -> int:
    """The most output tokens a request with this allowance (max_tokens, or the output reserve) may be
    delivered and billed: the allowance + 25 % + 16 tokens, room for tokenizers that count differently."""
    return allowance + allowance // OUTPUT_MARGIN_DIVISOR + OUTPUT_MARGIN_TOKENS


class OutputMeter:
    """Counts a stream's output as it passes, without a tokenizer call per chunk.

    Every token is at least one byte (byte-level BPE), so the bytes of the forwarded events are an upper
    bound of their tokens: while `counted + that bound` stays under the ceiling, a batch costs one len()
    per event. Past it, events are read for their delta text (a tighter bound: its UTF-8 bytes), and only
    when that too could pass the ceiling is the text counted with the tokenizer. Each count moves the
    confirmed total up, so the tokenizer runs only near the ceiling, on a few pieces of the text.
    """

    __slots__ = ("ceiling", "counted", "_pending", "_pending_bytes", "_text", "_text_bytes")
    read_text = staticmethod(stream_text)  # the delta text of encoded events (a subclass reads another format)

    def __init__(self, ceiling: int):
        self.ceiling = ceiling
        self.counted = 0  # tokens confirmed by the tokenizer
        self._pending: list[bytes] = []  # events not yet read for their text
        self._pending_bytes = 0
        self._text: list[str] = []  # delta text not yet tokenized
        self._text_bytes = 0

    def fits(self, events: list[bytes]) -> bool:
        """True (and counted) when these events certainly keep the stream within its ceiling."""
        size = 0
        for event in events:
            size += len(event)
        if self.counted + self._text_bytes + self._pending_bytes + size > self.ceiling:
            return False
        self._pending += events
        self._pending_bytes += size
        return True

    async def take(self, events: list[bytes]) -> int:
        """After `fits` said no: how many of these events, in order, stay within the ceiling (all counted)."""
        if self._pending:
            self._add_text(self.read_text(self._pending))
            self._pending, self._pending_bytes = [], 0
        for index, event in enumerate(events):
            text = self.read_text([event])
            size = len(text.encode("utf-8", "replace"))
            if self.counted + self._text_bytes + size > self.ceiling:
                self._text.append(text)
                whole, self._text, self._text_bytes = "".join(self._text), [], 0
                self.counted += await _count(whole)
                if self.counted > self.ceiling:
                    return index
            else:
                self._add_text(text, size)
        return len(events)

    def _add_text(self, text: str, size: int | None = None) -> None:
        self._text.append(text)
        self._text_bytes += len(text.encode("utf-8", "replace")) if size is None else size


async def _count(text: str) -> int:
    if tokens.loaded() and len(text) < INLINE_COUNT_CHARS:
        return tokens.count_text(text)
    # The first count loads the tables (seconds), a long text takes a while: off the event loop.
    return await asyncio.get_running_loop().run_in_executor(None, tokens.count_text, text)
