"""Anthropic's Message Batches API: POST /v1/messages/batches with requests [{custom_id, params}], polled at
GET /v1/messages/batches/{id} until processing_status is "ended", then its results read as JSONL. Wire
shapes: anthropic-sdk-python `types/messages/{message_batch, message_batch_individual_response,
message_batch_*_result}.py`; platform.claude.com/docs/en/api/retrieving-message-batches.

The results are read from {base}/v1/messages/batches/{id}/results, never from the `results_url` the answer
names: that URL is the provider's word, and following it would send the API key wherever it points."""

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
from wire.adapters.anthropic import ERROR_STATUS, VERSION
from wire.adapters.base import Target

POLL_RETRIES = (408, 409, 429, 500, 502, 503, 504, 529)


def _url(target: Target, tail: str = "") -> str:
    return target.base_url.rstrip("/") + "/v1/messages/batches" + tail


def _headers(target: Target) -> dict:
    return {**target.extra_headers, "x-api-key": target.api_key, "anthropic-version": VERSION, "Content-Type": "application/json"}


def create(target: Target, *, lines: list[tuple[int, dict]]) -> str:
    """`lines`: (number, Messages params with the upstream model). The provider's batch id."""
    body = orjson.dumps({"requests": [{"custom_id": upstream_custom_id(number), "params": params} for number, params in lines]})
    answer = json_object(call("POST", _url(target), headers=_headers(target), content=body, timeout=600, transient_statuses=()))
    return checked_id(answer.get("id"))


def cancel(target: Target, upstream_id: str) -> None:
    call("POST", _url(target, f"/{checked_id(upstream_id)}/cancel"), headers=_headers(target))


def poll(target: Target, upstream_id: str, *, cancel_asked: bool) -> Poll:
    answer = json_object(call("GET", _url(target, f"/{checked_id(upstream_id)}"), headers=_headers(target), transient_statuses=POLL_RETRIES))
    status = answer.get("processing_status")
    if status in ("in_progress", "canceling"):
        return Poll(done=False)
    if status != "ended":
        raise NativeError(_("The provider reported a batch status Tollgate does not know."), transient=True)
    raw = call("GET", _url(target, f"/{checked_id(upstream_id)}/results"), headers=_headers(target), max_body=MAX_RESULT_BYTES,
               timeout=900, transient_statuses=POLL_RETRIES)
    results = [result for item in jsonl_objects(raw) if (result := _result(item)) is not None]
    counts = answer.get("request_counts") if isinstance(answer.get("request_counts"), dict) else {}
    if cancel_asked:
        return Poll(done=True, outcome="cancelled", results=results)
    if counts.get("expired") and not counts.get("succeeded") and not counts.get("errored"):
        return Poll(done=True, outcome="expired", reason=_("The provider's batch expired before any request ran."), results=results)
    return Poll(done=True, outcome="completed", results=results)


def _result(item: dict) -> Result | None:
    number = line_number(item.get("custom_id"))
    result = item.get("result")
    if number is None or not isinstance(result, dict):
        return None
    kind = result.get("type")
    if kind == "succeeded" and isinstance(result.get("message"), dict):
        return Result(number, status_code=200, body=orjson.dumps(result["message"]))
    if kind == "errored":
        # An ErrorResponse {type: "error", error: {type, message}}; older answers put {type, message} directly.
        error = result.get("error") if isinstance(result.get("error"), dict) else {}
        inner = error.get("error") if isinstance(error.get("error"), dict) else error
        kind_text = str(inner.get("type") or "api_error")[:64]
        body = {"error": {"message": str(inner.get("message") or "")[:500], "type": kind_text, "param": None, "code": None}}
        return Result(number, status_code=ERROR_STATUS.get(kind_text, 500), body=orjson.dumps(body))
    if kind in ("canceled", "expired"):
        if kind == "canceled":
            return Result(number, error={"code": "batch_cancelled", "message": _("The batch was cancelled before this request ran.")})
        return Result(number, error={"code": "batch_expired", "message": _("The batch expired before this request ran.")})
    return None
