"""Writes of one event-loop turn leave as one; a close or the next turn never loses or reorders them."""

import asyncio

from relay.coalesce import CoalescingTransport


class RecordingTransport:
    def __init__(self):
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 8000) if name == "sockname" else default


def test_one_turn_one_write_and_order_kept_across_turns():
    async def main():
        real = RecordingTransport()
        transport = CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"{}")
        assert real.writes == []  # held until the turn ends
        await asyncio.sleep(0)
        transport.write(b"data: 1\n\n")
        await asyncio.sleep(0)
        transport.write(b"data: 2\n\n")
        transport.close()  # flushes first
        await asyncio.sleep(0)
        return real

    real = asyncio.run(main())
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}", b"data: 1\n\n", b"data: 2\n\n"]
    assert real.closed


def test_abort_drops_what_is_held_and_other_calls_reach_the_real_transport():
    async def main():
        real = RecordingTransport()
        transport = CoalescingTransport(real, asyncio.get_running_loop())
        assert transport.get_extra_info("sockname") == ("127.0.0.1", 8000)
        transport.write(b"partial")
        transport.abort()
        await asyncio.sleep(0)
        return real

    real = asyncio.run(main())
    assert real.writes == [] and real.aborted
