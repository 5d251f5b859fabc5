"""Worst-case work per /v1 request on the event loop: parse, `check_body` and `tokens.bound_prompt`.

    python benchmarks/request_work.py [--size 8388608] [--repeat 5]

By default each shape is the largest body within the size limit (TOLLGATE_MAX_BODY_BYTES, 8 MiB)
that the checks accept;
`--at-limit` fills every shape to the size limit. Shapes maximise the JSON nodes to walk: many tiny messages,
content parts, keys, empty lists, token arrays, tools. Prints one line per shape with the best of `--repeat`
runs in CPU ms of this thread (parse, check, bound and their sum: steady on a busy machine, where wall
time is not) and the outcome, then the worst check + bound.
The relay's target: no step of one request holds the event loop for more than 20 ms.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402

from relay.validation import check_body  # noqa: E402
from wire import tokens  # noqa: E402
from wire.errors import RelayError  # noqa: E402

try:
    from relay.validation import check_raw  # noqa: E402  (the pre-parse bound; absent before it existed)
except ImportError:
    def check_raw(raw: bytes) -> None:
        pass


def _build(prefix: bytes, item, suffix: bytes, count: int) -> bytes:
    return prefix + b",".join(item(i) if callable(item) else item for i in range(count)) + suffix


SHAPES = {  # name: (endpoint, prefix, item (bytes or index -> bytes), suffix)
    "tiny messages": ("chat", b'{"model":"m","messages":[', b'{"role":"user","content":""}', b"]}"),
    "content parts": ("chat", b'{"model":"m","messages":[{"role":"user","content":[', b'{"type":"text","text":""}', b"]}]}"),
    "wide metadata": ("chat", b'{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":{',
                      lambda i: b'"k%d":0' % i, b"}}"),
    "tool_calls": ("chat", b'{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[',
                   b'{"function":{"name":"","arguments":""}}', b"]}]}"),
    "tools": ("chat", b'{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[',
              b'{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}}', b"]}"),
    "empty lists": ("chat", b'{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":{"a":[', b"[]", b"]}}"),
    "token arrays": ("embeddings", b'{"model":"m","input":[[', b"1", b"]]}"),
    "many inputs": ("embeddings", b'{"model":"m","input":[', b"[1]", b"]}"),
    "prompt strings": ("completions", b'{"model":"m","prompt":[', b'""', b"]}"),
    "long text": ("chat", b'{"model":"m","messages":[{"role":"user","content":"', "汉".encode(), b'"}]}'),
    "deep nesting": ("chat", b'{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":{"a":[',
                     b"[" * 30 + b"]" * 30, b"]}}"),
}


def worst_accepted(shape, size: int) -> bytes:
    """The largest body of this shape within `size` bytes that the checks accept (else the largest)."""
    endpoint, prefix, item, suffix = shape
    joiner = b"" if shape[0] == "chat" and item == "汉".encode() else b","
    one = item(10**6) if callable(item) else item
    count = max(1, (size - len(prefix) - len(suffix)) // (len(one) + len(joiner)))
    if not joiner:
        return prefix + item * count + suffix
    while count > 1:
        raw = _build(prefix, item, suffix, count)
        try:
            check_raw(raw)
            check_body(endpoint, orjson.loads(raw))
            return raw
        except RelayError as error:
            if error.code != "request_too_complex":
                return raw
        count = count * 9 // 10
    return _build(prefix, item, suffix, count)


def _at_limit(shape, size: int) -> bytes:
    endpoint, prefix, item, suffix = shape
    one = item(10**6) if callable(item) else item
    if one == "汉".encode():
        return prefix + item * ((size - len(prefix) - len(suffix)) // len(one)) + suffix
    return _build(prefix, item, suffix, max(1, (size - len(prefix) - len(suffix)) // (len(one) + 1)))


def _best(function, repeat: int) -> tuple[float, object]:
    best, outcome = float("inf"), None
    for _ in range(repeat):
        started = time.thread_time()
        try:
            outcome = function()
        except RelayError as error:
            outcome = error
        best = min(best, time.thread_time() - started)
    return best * 1000, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8 * 1024 * 1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--at-limit", action="store_true", help="bodies filled to --size whether accepted or not")
    args = parser.parse_args()
    worst = 0.0
    print(f"{'shape':<16} {'bytes':>9} {'parse':>8} {'check':>8} {'bound':>8} {'sum':>8}  outcome")
    for name, shape in SHAPES.items():
        endpoint = shape[0]
        raw = worst_accepted(shape, args.size) if not args.at_limit else _at_limit(shape, args.size)
        parse_ms, body = _best(lambda: (check_raw(raw), orjson.loads(raw))[1], args.repeat)
        if isinstance(body, Exception):
            print(f"{name:<16} {len(raw):>9} {parse_ms:>8.1f}  parse failed: {body}")
            continue
        check_ms, outcome = _best(lambda: check_body(endpoint, body), args.repeat)
        bound_ms = 0.0
        if not isinstance(outcome, RelayError):
            bound_ms, _ = _best(lambda: tokens.bound_prompt(endpoint, body), args.repeat)
        total = parse_ms + check_ms + bound_ms
        worst = max(worst, check_ms + bound_ms)
        result = "ok" if not isinstance(outcome, RelayError) else f"{outcome.status}: {outcome.message[:60]}"
        print(f"{name:<16} {len(raw):>9} {parse_ms:>8.1f} {check_ms:>8.1f} {bound_ms:>8.1f} {total:>8.1f}  {result}")
    print(f"worst check + bound: {worst:.1f} ms")


if __name__ == "__main__":
    main()
