"""Reading a /v1 body into a checked request without holding the event loop.

A small body is parsed and checked inline (a few ms at worst). orjson holds the GIL while it parses,
so a thread would not free the loop: a body above OFFLOAD_BYTES is parsed and checked in a worker
process instead (one per relay process, started on first use). The worker answers with the checked
body (unpickling a body that passed the checks takes a few ms: its size is bounded by them) or with
the refusal, so a body that would cost orjson hundreds of ms (an 8 MiB object of 600,000 members) never
touches the loop (benchmarks/request_work.py, README "Work per request is bounded").
"""

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import orjson

from relay import messages, responses
from relay.validation import check_body, check_raw
from wire.errors import InvalidRequest, RelayError

log = logging.getLogger(__name__)

OFFLOAD_BYTES = 64 * 1024  # parse + check of a worst-case body this size: under 7 ms of CPU (128 KiB: 12 ms)


def parse_checked(raw: bytes, endpoint: str) -> dict:
    """The body as a dict that passed `check_body`; InvalidRequest otherwise."""
    check_raw(raw)  # bounds the parse: millions of tiny arrays would hold the parser for seconds
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON ({exc.msg}).") from exc
    try:
        checks = messages.check_body if endpoint in messages.ENDPOINTS else responses.check_body if endpoint == responses.ENDPOINT else check_body
        checks(endpoint, body)
    except InvalidRequest as error:
        error.body_seen = body  # the refused request's ledger row names the model asked for
        raise
    return body


def _in_worker(raw: bytes, endpoint: str) -> tuple:
    """parse_checked in the worker process; exceptions do not pickle, so a refusal comes back as data."""
    try:
        return ("ok", parse_checked(raw, endpoint))
    except InvalidRequest as error:
        seen = getattr(error, "body_seen", None)
        # Only what the refused row needs: the whole body may be what is too large to send back.
        head = {"model": seen.get("model"), "stream": seen.get("stream")} if isinstance(seen, dict) else None
        return ("refused", error.message, error.param, error.code, head)


class BodyReader:
    """Parses and checks /v1 bodies: inline when small, in a worker process when large."""

    def __init__(self, offload_bytes: int = OFFLOAD_BYTES):
        self.offload_bytes = offload_bytes
        self._pool: ProcessPoolExecutor | None = None

    async def read(self, raw: bytes, endpoint: str) -> dict:
        if len(raw) <= self.offload_bytes:
            return parse_checked(raw, endpoint)
        try:
            answer = await asyncio.get_running_loop().run_in_executor(self._workers(), _in_worker, raw, endpoint)
        except BrokenProcessPool:
            self._pool = None  # the worker died (killed, out of memory): the next body gets a new one
            log.error("the body parser's worker process died; starting another")
            raise RelayError("The gateway failed to read this request body.") from None
        if answer[0] == "ok":
            return answer[1]
        _, message, param, code, head = answer
        error = InvalidRequest(message, param=param, code=code)
        error.body_seen = head
        raise error

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fresh interpreter that imports only this module's needs (no fork of the running loop).
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
