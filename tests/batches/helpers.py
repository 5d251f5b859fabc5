import io

import orjson


def chat_jsonl(count: int, *, model: str = "gpt-test", max_tokens: int = 16) -> bytes:
    """`count` chat lines, each with its own document text (so the mock's log tells the lines apart)."""
    out = io.BytesIO()
    for number in range(1, count + 1):
        body = {"model": model, "messages": [{"role": "user", "content": f"Summarise document {number}"}], "max_tokens": max_tokens}
        out.write(orjson.dumps({"custom_id": f"line-{number}", "method": "POST", "url": "/v1/chat/completions", "body": body}) + b"\n")
    return out.getvalue()


def sent_documents(upstream) -> list[str]:
    """The user message of every chat request the mock upstream received."""
    return [r["json"]["messages"][-1]["content"] for r in upstream.requests if r["path"].endswith("/chat/completions") and r.get("json")]


def parse_jsonl(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]
