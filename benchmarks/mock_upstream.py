"""A tiny asyncio (uvloop) OpenAI-format upstream for what nginx cannot do: SSE events spaced in time.

    python benchmarks/mock_upstream.py --port 18083

POST .../chat/completions with "stream": true answers SSE: headers at once, the first event after
SPACED_TTFT_MS, then one event every SPACED_GAP_MS (canned.STREAM_EVENTS). Without "stream" it
answers the canned JSON; .../embeddings the canned embedding; .../v1/messages the canned Anthropic answer.
HTTP/1.1 keep-alive, chunked streams.
Also the fallback mock for every scenario when nginx is not installed (then `--no-spacing` makes
/stream/... paths answer the whole SSE body at once, as the nginx mock does).
"""

import argparse
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import canned  # noqa: E402


def _head(status: str, content_type: bytes, length: int | None) -> bytes:
    lines = [b"HTTP/1.1 " + status.encode(), b"content-type: " + content_type, b"connection: keep-alive"]
    lines.append(b"content-length: " + str(length).encode() if length is not None else b"transfer-encoding: chunked")
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _spaced(writer: asyncio.StreamWriter, ttft: float, gap: float) -> None:
    writer.write(_head("200 OK", b"text/event-stream", None))
    await writer.drain()
    for index, event in enumerate(canned.STREAM_EVENTS):
        await asyncio.sleep(ttft if index == 0 else gap)
        writer.write(b"%x\r\n%s\r\n" % (len(event), event))
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, args) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            length = 0
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            path = path.split("?", 1)[0]
            if method != "POST":
                writer.write(_head("404 Not Found", b"application/json", len(canned.NOT_FOUND)) + canned.NOT_FOUND)
            elif path.endswith("/v1/messages"):  # Anthropic's format (the nginx mock's answer on this path)
                writer.write(_head("200 OK", b"application/json", len(canned.MESSAGES_RESPONSE)) + canned.MESSAGES_RESPONSE)
            elif path.endswith("/embeddings"):
                writer.write(_head("200 OK", b"application/json", len(canned.EMBEDDINGS_RESPONSE)) + canned.EMBEDDINGS_RESPONSE)
            elif path.endswith("/chat/completions"):
                try:
                    stream = bool(json.loads(body or b"{}").get("stream"))
                except ValueError:
                    stream = False
                if path.startswith("/stream/"):
                    # The unspaced canned stream (what the nginx mock serves on this path).
                    writer.write(_head("200 OK", b"text/event-stream", len(canned.STREAM_BODY)) + canned.STREAM_BODY)
                elif stream:
                    await _spaced(writer, args.ttft_ms / 1000, args.gap_ms / 1000)
                else:
                    writer.write(_head("200 OK", b"application/json", len(canned.CHAT_RESPONSE)) + canned.CHAT_RESPONSE)
            else:
                writer.write(_head("404 Not Found", b"application/json", len(canned.NOT_FOUND)) + canned.NOT_FOUND)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(args) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, args), args.host, args.port, backlog=4096, reuse_address=True)
    print(f"mock upstream on {args.host}:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18083)
    parser.add_argument("--ttft-ms", type=float, default=canned.SPACED_TTFT_MS)
    parser.add_argument("--gap-ms", type=float, default=canned.SPACED_GAP_MS)
    arguments = parser.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        run(main(arguments))
    except KeyboardInterrupt:
        pass
