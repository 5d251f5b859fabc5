"""The providers' own batch APIs for the mock upstream, answering from the uploaded lines.

OpenAI: POST /v1/files (multipart, purpose batch), POST and GET /v1/batches, GET /v1/batches/{id},
POST /v1/batches/{id}/cancel, GET /v1/files/{id}/content. Anthropic: POST /v1/messages/batches,
GET /v1/messages/batches/{id}, POST .../cancel, GET .../results.

A batch runs its lines on the first poll after it was created (unless `upstream.batch_hold`): each line is
answered as the live routes answer it (the word-count tokenizer, the 10-word reply; a model `fail-<code>`
gives that error for that line). A cancelled batch answers its first half and cancels the rest. An OpenAI
batch naming the model `batch-failed` fails validation, as OpenAI fails a batch.

A hostile provider, for the tests that Tollgate trusts nothing it says: `upstream.usage_override` is reported
as every OpenAI batch answer's usage; `upstream.batch_garbage` adds lines to the output file that are not
JSON, name a path as a line, name a line twice or one that does not exist.
"""

import re
import time

import orjson
from aiohttp import web

from tests.upstream import anthropic_routes, openai_routes
from tests.upstream.server import REPLY_WORDS, LedgerEntry, count_prompt_tokens

EXPECTED_KEY = "test-key"
ANTHROPIC_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _openai_error(status: int, message: str, code=None):
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}, status=status)


def _multipart_file(raw: bytes, content_type: str) -> tuple[dict, bytes | None]:
    """(form fields, the file's bytes) of a multipart/form-data body (aiohttp's own reader needs the unread stream)."""
    match = re.search(r"boundary=\"?([^\";]+)\"?", content_type)
    if not match:
        return {}, None
    fields, content = {}, None
    for part in raw.split(b"--" + match.group(1).encode()):
        head, _, body = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]+)"', head)
        if not name:
            continue
        body = body[:-2] if body.endswith(b"\r\n") else body
        if b"filename=" in head:
            content = body
        else:
            fields[name.group(1).decode()] = body.decode()
    return fields, content


def _failure(model: str) -> int | None:
    return int(model.split("-", 1)[1]) if model.startswith("fail-") and model[5:].isdigit() else None


def _openai_answer(upstream, url: str, body: dict) -> tuple[int, dict]:
    model = str(body.get("model", ""))
    status = _failure(model)
    if status:
        return status, {"error": {"message": f"Mock failure {status}", "type": "invalid_request_error", "param": None, "code": None}}
    if url == "/v1/embeddings":
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs or []
        prompt = count_prompt_tokens([str(i) for i in inputs]) - 3
        upstream.record(LedgerEntry(upstream.next_id("emb-batch"), "openai-batch", model, prompt, 0, False, True))
        return 200, {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2]} for i in range(len(inputs))],
                     "model": model, "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}
    prompt = count_prompt_tokens(openai_routes._texts(body))
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or len(REPLY_WORDS)
    words = REPLY_WORDS[: min(limit, len(REPLY_WORDS))]
    upstream_id = upstream.next_id("chatcmpl-batch")
    upstream.record(LedgerEntry(upstream_id, "openai-batch", model, prompt, len(words), False, True))
    usage = {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words),
             "prompt_tokens_details": {"cached_tokens": 2 if prompt > 10 else 0}}
    if upstream.usage_override is not None:
        usage = upstream.usage_override
    message = {"role": "assistant", "content": " ".join(words)}
    return 200, {"id": upstream_id, "object": "chat.completion", "created": int(time.time()), "model": model,
                 "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage}


def _anthropic_result(upstream, params: dict) -> dict:
    model = str(params.get("model", ""))
    status = _failure(model)
    if status:
        error = {"type": anthropic_routes.ERROR_TYPES.get(status, "api_error"), "message": f"Mock failure {status}"}
        return {"type": "errored", "error": {"type": "error", "error": error}}
    prompt = count_prompt_tokens(anthropic_routes._texts(params))
    cached = 2 if prompt > 10 else 0
    words = REPLY_WORDS[: min(params["max_tokens"], len(REPLY_WORDS))]
    upstream_id = upstream.next_id("msg_batch")
    upstream.record(LedgerEntry(upstream_id, "anthropic-batch", model, prompt, len(words), False, True))
    usage = {"input_tokens": prompt - cached, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached, "output_tokens": len(words)}
    message = {"id": upstream_id, "type": "message", "role": "assistant", "model": model, "content": [{"type": "text", "text": " ".join(words)}],
               "stop_reason": "end_turn" if len(words) == len(REPLY_WORDS) else "max_tokens", "stop_sequence": None, "usage": usage}
    return {"type": "succeeded", "message": message}


def add_routes(app: web.Application, upstream) -> None:
    def openai_authorized(request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {EXPECTED_KEY}"

    def openai_object(batch: dict) -> dict:
        return {key: value for key, value in batch.items() if not key.startswith("_")}

    async def file_upload(request):
        if not openai_authorized(request):
            return _openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        fields, content = _multipart_file(await request.read(), request.headers.get("Content-Type", ""))
        if content is None or fields.get("purpose") != "batch":
            return _openai_error(400, "Send a file with purpose batch.")
        file_id = upstream.next_id("file-up")
        upstream.files[file_id] = content
        return web.json_response({"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                                  "filename": "input.jsonl", "purpose": "batch"})

    async def file_content(request):
        if not openai_authorized(request):
            return _openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        content = upstream.files.get(request.match_info["file_id"])
        if content is None:
            return _openai_error(404, "No such file.")
        return web.Response(body=content, content_type="application/octet-stream")

    async def batch_create(request):
        if not openai_authorized(request):
            return _openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        body = await request.json()
        content = upstream.files.get(body.get("input_file_id"))
        if content is None:
            return _openai_error(404, "No such file.")
        if body.get("completion_window") != "24h":
            return _openai_error(400, "completion_window must be 24h.")
        lines = [orjson.loads(line) for line in content.splitlines() if line.strip()]
        batch_id = upstream.next_id("batch_up")
        batch = {"id": batch_id, "object": "batch", "endpoint": body.get("endpoint"), "input_file_id": body["input_file_id"],
                 "completion_window": "24h", "status": "in_progress", "output_file_id": None, "error_file_id": None, "errors": None,
                 "created_at": int(time.time()), "metadata": body.get("metadata"),
                 "request_counts": {"total": len(lines), "completed": 0, "failed": 0}, "_lines": lines}
        if any(line.get("body", {}).get("model") == "batch-failed" for line in lines):
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [{"code": "invalid_model", "message": "The model batch-failed does not exist.", "line": 1}]}
        upstream.batches[batch_id] = batch
        return web.json_response(openai_object(batch))

    def run_openai(batch: dict, lines: list[dict]) -> None:
        output, errors = [], []
        for line in lines:
            status, answer = _openai_answer(upstream, line["url"], line["body"])
            item = {"id": upstream.next_id("batch_req_"), "custom_id": line["custom_id"],
                    "response": {"status_code": status, "request_id": upstream.next_id("req_"), "body": answer}, "error": None}
            (output if status == 200 else errors).append(orjson.dumps(item))
        if getattr(upstream, "batch_garbage", False) and output:
            first = orjson.loads(output[0])
            output += [b"not json at all", b'"a string"', orjson.dumps({"custom_id": "../../etc/passwd", "response": first["response"]}),
                       orjson.dumps({**first, "response": {**first["response"], "body": {"usage": {"completion_tokens": 10**12}}}}),
                       orjson.dumps({**first, "custom_id": "line-99999"}), orjson.dumps({"custom_id": "line-2", "response": "no"})]
        for field, rows in (("output_file_id", output), ("error_file_id", errors)):
            if rows:
                file_id = upstream.next_id("file-out")
                upstream.files[file_id] = b"\n".join(rows) + b"\n"
                batch[field] = file_id
        batch["request_counts"] = {"total": len(batch["_lines"]), "completed": len(output), "failed": len(errors)}

    async def batch_retrieve(request):
        if not openai_authorized(request):
            return _openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        batch = upstream.batches.get(request.match_info["batch_id"])
        if batch is None:
            return _openai_error(404, "No such batch.")
        if batch["status"] == "in_progress" and not upstream.batch_hold:
            run_openai(batch, batch["_lines"])
            batch["status"], batch["completed_at"] = "completed", int(time.time())
        elif batch["status"] == "cancelling":
            run_openai(batch, batch["_lines"][: (len(batch["_lines"]) + 1) // 2])
            batch["status"], batch["cancelled_at"] = "cancelled", int(time.time())
        return web.json_response(openai_object(batch))

    async def batch_cancel(request):
        if not openai_authorized(request):
            return _openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        batch = upstream.batches.get(request.match_info["batch_id"])
        if batch is None:
            return _openai_error(404, "No such batch.")
        if batch["status"] in ("validating", "in_progress"):
            batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
        return web.json_response(openai_object(batch))

    # --- Anthropic -------------------------------------------------------------------------------

    def anthropic_refusal(request):
        if request.headers.get("x-api-key") != EXPECTED_KEY:
            return anthropic_routes._error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return anthropic_routes._error(400, "anthropic-version: header is required")
        return None

    def message_batch(batch: dict) -> dict:
        return {key: value for key, value in batch.items() if not key.startswith("_")}

    async def messages_batch_create(request):
        refused = anthropic_refusal(request)
        if refused is not None:
            return refused
        body = await request.json()
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return anthropic_routes._error(400, "requests: Field required")
        for item in requests:
            if not ANTHROPIC_CUSTOM_ID.match(str(item.get("custom_id"))) or not isinstance((item.get("params") or {}).get("max_tokens"), int):
                return anthropic_routes._error(400, "requests: each needs a custom_id of [a-zA-Z0-9_-]{1,64} and params with max_tokens")
        batch_id = upstream.next_id("msgbatch_")
        batch = {"id": batch_id, "type": "message_batch", "processing_status": "in_progress", "results_url": None, "ended_at": None,
                 "cancel_initiated_at": None, "created_at": "2026-12-03T00:00:00Z", "expires_at": "2026-12-04T00:00:00Z", "archived_at": None,
                 "request_counts": {"processing": len(requests), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
                 "_requests": requests, "_results": []}
        upstream.batches[batch_id] = batch
        return web.json_response(message_batch(batch))

    def run_anthropic(batch: dict, cancelled: bool) -> None:
        requests = batch["_requests"]
        answered = (len(requests) + 1) // 2 if cancelled else len(requests)
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for index, item in enumerate(requests):
            result = _anthropic_result(upstream, item["params"]) if index < answered else {"type": "canceled"}
            counts[{"succeeded": "succeeded", "errored": "errored", "canceled": "canceled"}[result["type"]]] += 1
            batch["_results"].append(orjson.dumps({"custom_id": item["custom_id"], "result": result}))
        batch["request_counts"] = counts
        batch["processing_status"], batch["ended_at"] = "ended", "2026-12-03T00:01:00Z"
        batch["results_url"] = f"{upstream.url}/v1/messages/batches/{batch['id']}/results"

    async def messages_batch_retrieve(request):
        refused = anthropic_refusal(request)
        if refused is not None:
            return refused
        batch = upstream.batches.get(request.match_info["batch_id"])
        if batch is None:
            return anthropic_routes._error(404, "No such message batch.")
        if batch["processing_status"] == "in_progress" and not upstream.batch_hold:
            run_anthropic(batch, cancelled=False)
        elif batch["processing_status"] == "canceling":
            run_anthropic(batch, cancelled=True)
        return web.json_response(message_batch(batch))

    async def messages_batch_cancel(request):
        refused = anthropic_refusal(request)
        if refused is not None:
            return refused
        batch = upstream.batches.get(request.match_info["batch_id"])
        if batch is None:
            return anthropic_routes._error(404, "No such message batch.")
        if batch["processing_status"] == "in_progress":
            batch["processing_status"], batch["cancel_initiated_at"] = "canceling", "2026-12-03T00:00:30Z"
        return web.json_response(message_batch(batch))

    async def messages_batch_results(request):
        refused = anthropic_refusal(request)
        if refused is not None:
            return refused
        batch = upstream.batches.get(request.match_info["batch_id"])
        if batch is None or batch["processing_status"] != "ended":
            return anthropic_routes._error(404, "The batch has no results yet.")
        return web.Response(body=b"\n".join(batch["_results"]) + b"\n", content_type="application/binary")

    app.router.add_post("/v1/files", file_upload)
    app.router.add_get("/v1/files/{file_id}/content", file_content)
    async def batch_list(request):
        if not openai_authorized(request):
            return _openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        found = [openai_object(b) for b in reversed(upstream.batches.values()) if b.get("object") == "batch"]
        return web.json_response({"object": "list", "data": found[: int(request.query.get("limit", 20))], "has_more": False})

    app.router.add_post("/v1/batches", batch_create)
    app.router.add_get("/v1/batches", batch_list)
    app.router.add_get("/v1/batches/{batch_id}", batch_retrieve)
    app.router.add_post("/v1/batches/{batch_id}/cancel", batch_cancel)
    app.router.add_post("/v1/messages/batches", messages_batch_create)
    app.router.add_get("/v1/messages/batches/{batch_id}", messages_batch_retrieve)
    app.router.add_post("/v1/messages/batches/{batch_id}/cancel", messages_batch_cancel)
    app.router.add_get("/v1/messages/batches/{batch_id}/results", messages_batch_results)
