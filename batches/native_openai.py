"""OpenAI's own batch API: the JSONL uploaded to /files (purpose batch), a batch created at /batches with a
24h window, polled, and its output and error files read back. Wire shapes: openai-python `types/batch.py`,
`types/batch_request_output.py` (a line: {id, custom_id, response: {status_code, request_id, body}, error})."""

import secrets

import orjson
from django.utils.translation import gettext as _

from batches.native_http import (
    MAX_RESULT_BYTES,
    NativeError,
    Poll,
    Result,
    call,
    checked_id,
    json_object,
    jsonl_objects,
    line_number,
    upstream_custom_id,
)
from wire.adapters.base import Target

RUNNING = {"validating", "in_progress", "finalizing", "cancelling"}
ENDED = {"completed", "failed", "expired", "cancelled"}


def _base(target: Target) -> str:
    return target.base_url.rstrip("/")


def _headers(target: Target, content_type: str = "application/json") -> dict:
    return {**target.extra_headers, "Authorization": f"Bearer {target.api_key}", "Content-Type": content_type}


def _multipart(filename: str, content: bytes) -> tuple[str, bytes]:
    boundary = "tollgate-" + secrets.token_hex(12)
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/jsonl\r\n\r\n").encode()
    return f"multipart/form-data; boundary={boundary}", head + content + f"\r\n--{boundary}--\r\n".encode()


def upload(target: Target, *, endpoint: str, lines: list[tuple[int, dict]], batch_id: str) -> str:
    """The input file, with upstream model names and line-number custom_ids; the provider's file id."""
    content = b"".join(orjson.dumps({"custom_id": upstream_custom_id(number), "method": "POST", "url": endpoint, "body": body}) + b"\n"
                       for number, body in lines)
    content_type, payload = _multipart(f"{batch_id}.jsonl", content)
    answer = json_object(call("POST", _base(target) + "/files", headers=_headers(target, content_type), content=payload, timeout=600,
                              transient_statuses=()))
    return checked_id(answer.get("id"))


def create(target: Target, *, file_id: str, endpoint: str, batch_id: str) -> str:
    body = orjson.dumps({"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", "metadata": {"tollgate_batch": batch_id}})
    answer = json_object(call("POST", _base(target) + "/batches", headers=_headers(target), content=body, transient_statuses=()))
    return checked_id(answer.get("id"))


def find(target: Target, *, batch_id: str) -> str:
    """The provider's batch created for this Tollgate batch (metadata.tollgate_batch), among its latest 100; ""
    if none: asked before creating again after a step died between creating and saving the id."""
    answer = json_object(call("GET", _base(target) + "/batches?limit=100", headers=_headers(target), transient_statuses=(408, 429, 500, 502, 503, 504)))
    for item in answer.get("data") if isinstance(answer.get("data"), list) else []:
        if isinstance(item, dict) and isinstance(item.get("metadata"), dict) and item["metadata"].get("tollgate_batch") == batch_id:
            return checked_id(item.get("id"))
    return ""


def cancel(target: Target, upstream_id: str) -> None:
    call("POST", f"{_base(target)}/batches/{checked_id(upstream_id)}/cancel", headers=_headers(target))


def poll(target: Target, upstream_id: str) -> Poll:
    answer = json_object(call("GET", f"{_base(target)}/batches/{checked_id(upstream_id)}", headers=_headers(target),
                              transient_statuses=(408, 409, 429, 500, 502, 503, 504)))
    status = answer.get("status")
    if status in RUNNING:
        return Poll(done=False)
    if status not in ENDED:
        raise NativeError(_("The provider reported a batch status Tollgate does not know."), transient=True)
    results = []
    for field in ("output_file_id", "error_file_id"):
        if answer.get(field):
            raw = call("GET", f"{_base(target)}/files/{checked_id(answer[field])}/content", headers=_headers(target),
                       max_body=MAX_RESULT_BYTES, timeout=900, transient_statuses=(408, 429, 500, 502, 503, 504))
            results += [result for item in jsonl_objects(raw) if (result := _result(item)) is not None]
    return Poll(done=True, outcome=status, reason=_reason(status, answer.get("errors")), results=results)


def _result(item: dict) -> Result | None:
    number = line_number(item.get("custom_id"))
    if number is None:
        return None
    response = item.get("response")
    if isinstance(response, dict) and type(response.get("status_code")) is int and 100 <= response["status_code"] <= 599 \
            and isinstance(response.get("body"), dict):
        return Result(number, status_code=response["status_code"], body=orjson.dumps(response["body"]))
    error = item.get("error")
    if isinstance(error, dict):
        return Result(number, error={"code": str(error.get("code") or "upstream_error")[:64], "message": str(error.get("message") or "")[:500]})
    return None


def _reason(status: str, errors) -> str:
    if status == "completed":
        return ""
    detail = ""
    data = errors.get("data") if isinstance(errors, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        detail = str(data[0].get("message") or data[0].get("code") or "")[:300]
    text = {"failed": _("The provider's batch failed."), "expired": _("The provider's batch expired before every request ran."),
            "cancelled": _("The provider's batch was cancelled.")}[status]
    return f"{text} {detail}" if detail else text
