"""Reading a batch's input: OpenAI's JSONL (one request per line), or documents with a prompt template.

Every problem is reported with its line number, as OpenAI reports a batch that fails validation.
"""

import csv
import io
from dataclasses import dataclass

import orjson
from django.utils.translation import gettext as _

from relay.messages import PATHS as MESSAGES_PATHS
from relay.pipeline import ENDPOINTS

# What a line may name: every POST endpoint the relay serves (count_tokens is free and pointless in a batch).
BATCH_ENDPOINTS = {**ENDPOINTS, **{path: name for path, name in MESSAGES_PATHS.items() if name != "count_tokens"}}
MAX_LINES = 50_000  # as OpenAI
MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_CUSTOM_ID = 200
MAX_ERRORS = 20  # reported; a file with more is as broken


@dataclass(frozen=True)
class Line:
    number: int
    custom_id: str
    url: str
    body: dict


class InputErrors(Exception):
    def __init__(self, errors: list[dict]):
        super().__init__(errors[0]["message"])
        self.errors = errors


def _error(number: int | None, message: str, code: str = "invalid_request", param: str | None = None) -> dict:
    return {"code": code, "message": message, "param": param, "line": number}


def parse_jsonl(content: bytes, *, endpoint: str) -> list[Line]:
    """The lines of a batch input file, each checked (OpenAI's rules: custom_id unique, method POST, url the
    batch's endpoint, body an object naming a model, no streaming); InputErrors lists what is wrong."""
    lines, errors, seen = [], [], set()
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        if len(errors) >= MAX_ERRORS:
            break
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            errors.append(_error(number, _("Line %(n)d is not valid JSON.") % {"n": number}, "invalid_json_line"))
            continue
        problem = _check_line(item, endpoint, seen)
        if problem:
            errors.append(_error(number, problem[0], problem[1], problem[2]))
            continue
        seen.add(item["custom_id"])
        lines.append(Line(number, item["custom_id"], item["url"], item["body"]))
    if not lines and not errors:
        errors.append(_error(None, _("The file has no requests."), "empty_file"))
    if len(lines) > MAX_LINES:
        errors.append(_error(None, _("A batch holds at most %(max)d requests.") % {"max": MAX_LINES}, "too_many_requests"))
    if errors:
        raise InputErrors(errors)
    return lines


def _check_line(item, endpoint: str, seen: set) -> tuple[str, str, str | None] | None:
    if not isinstance(item, dict):
        return _("Each line must be a JSON object."), "invalid_request", None
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > MAX_CUSTOM_ID:
        return _("custom_id must be a text of 1 to %(max)d characters.") % {"max": MAX_CUSTOM_ID}, "invalid_custom_id", "custom_id"
    if custom_id in seen:
        return _("The custom_id '%(id)s' is used twice; each request needs its own.") % {"id": custom_id}, "duplicate_custom_id", "custom_id"
    if item.get("method", "POST") != "POST":
        return _("method must be POST."), "invalid_method", "method"
    if item.get("url") != endpoint:
        return _("url must be the batch's endpoint, %(endpoint)s.") % {"endpoint": endpoint}, "mismatched_endpoint", "url"
    body = item.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
        return _("body must be a JSON object that names a model."), "invalid_body", "body"
    if body.get("stream"):
        return _("Batch requests cannot stream; remove \"stream\"."), "invalid_body", "body.stream"
    return None


def documents_to_jsonl(*, text: str, template: str, model: str, max_tokens: int | None, csv_column: str = "") -> bytes:
    """A JSONL chat batch from documents: each CSV row (its `csv_column`, or its first column) or, for plain
    text, each non-empty line becomes one request whose user message is `template` with {document} filled in."""
    if "{document}" not in template:
        raise InputErrors([_error(None, _("The prompt template must contain {document}."), "invalid_template", "template")])
    documents = _documents(text, csv_column)
    if not documents:
        raise InputErrors([_error(None, _("No documents were found."), "empty_file")])
    out = io.BytesIO()
    for number, document in enumerate(documents, start=1):
        body = {"model": model, "messages": [{"role": "user", "content": template.replace("{document}", document)}]}
        if max_tokens:
            body["max_tokens"] = max_tokens
        out.write(orjson.dumps({"custom_id": f"doc-{number}", "method": "POST", "url": "/v1/chat/completions", "body": body}))
        out.write(b"\n")
    return out.getvalue()


def _documents(text: str, csv_column: str) -> list[str]:
    if not csv_column:
        return [line.strip() for line in text.splitlines() if line.strip()]
    reader = csv.DictReader(io.StringIO(text))
    if csv_column not in (reader.fieldnames or []):
        raise InputErrors([_error(None, _("The CSV has no column '%(column)s'.") % {"column": csv_column}, "invalid_column", "column")])
    return [row[csv_column].strip() for row in reader if (row.get(csv_column) or "").strip()]
