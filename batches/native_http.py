"""HTTP to a provider's batch API, through the egress client (keys.egress: checked and pinned addresses,
capped bodies, no redirects). The provider's answers are untrusted: ids are checked before they go into a
path, objects before they are read, and an error says what happened without echoing the provider's body."""

import re

import orjson
from django.utils.translation import gettext as _

from keys.egress import EgressFailed, EgressRefused, fetch

MAX_OBJECT_BYTES = 1024 * 1024  # a batch or file object
MAX_RESULT_BYTES = 512 * 1024 * 1024  # a result file (OpenAI's input files are at most 200 MB)
_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


class NativeError(Exception):
    """A provider call that failed; `transient` ones (a timeout, 5xx, a poll's 429) are tried again later."""

    def __init__(self, reason: str, *, transient: bool = False, status: int | None = None):
        super().__init__(reason)
        self.reason, self.transient, self.status = reason, transient, status


def _refusal(status: int) -> str:
    if status in (401, 403):
        return _("The provider refused the credential (HTTP %(status)d): check its API key.") % {"status": status}
    if status == 429:
        return _("The provider refused the batch: rate limit or quota reached (HTTP 429).")
    if status == 404:
        return _("The provider does not know this batch or file (HTTP 404).")
    return _("The provider answered HTTP %(status)d.") % {"status": status}


def call(method: str, url: str, *, headers: dict, content: bytes = b"", max_body: int = MAX_OBJECT_BYTES, timeout: float = 60,
         transient_statuses=(408, 409, 500, 502, 503, 504, 529)) -> bytes:
    """One call; the body of a 2xx answer, else NativeError."""
    try:
        response = fetch(method, url, content=content, headers=headers, timeout=timeout, max_body=max_body + 1)
    except EgressRefused as exc:
        raise NativeError(_("The provider's address is not allowed: %(reason)s") % {"reason": exc.message}) from exc
    except EgressFailed as exc:
        raise NativeError(_("The provider could not be reached: %(reason)s") % {"reason": exc.message}, transient=True) from exc
    if response.status_code >= 400:
        status = response.status_code
        raise NativeError(_refusal(status), transient=status in transient_statuses or status >= 500, status=status)
    if len(response.body) > max_body:
        raise NativeError(_("The provider's answer is larger than %(mb)d MB.") % {"mb": max_body // 2**20})
    return response.body


def json_object(raw: bytes) -> dict:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise NativeError(_("The provider answered with something that is not a JSON object."), transient=True)
    return value


def checked_id(value) -> str:
    """An id the provider gave, fit to go into a URL path."""
    if not isinstance(value, str) or not _ID.match(value):
        raise NativeError(_("The provider answered with an id that is not valid."))
    return value


def jsonl_objects(raw: bytes) -> list[dict]:
    """The JSON objects of a JSONL result file; lines that are not objects are skipped (their lines end up
    `native_result_missing`)."""
    out = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


# --- what a provider module hands back --------------------------------------------------------


class Result:
    """One line's result: an answer (status_code, body: the provider's raw answer) or an `error` with no answer."""

    __slots__ = ("number", "status_code", "body", "error")

    def __init__(self, number: int, *, status_code: int | None = None, body: bytes | None = None, error: dict | None = None):
        self.number, self.status_code, self.body, self.error = number, status_code, body, error


class Poll:
    """A poll's answer: not `done` yet, or done with an `outcome` ("completed", "failed", "expired",
    "cancelled"), a `reason` when it is not "completed", and the results found."""

    def __init__(self, *, done: bool, outcome: str = "", reason: str = "", results: list[Result] | None = None):
        self.done, self.outcome, self.reason, self.results = done, outcome, reason, results or []


_LINE_ID = re.compile(r"^line-([0-9]{1,6})$")


def upstream_custom_id(number: int) -> str:
    """The custom_id a line goes upstream with: its line number (Anthropic allows only ^[a-zA-Z0-9_-]{1,64}$;
    the client's own custom_id stays here and is put back in Tollgate's output)."""
    return f"line-{number}"


def line_number(custom_id) -> int | None:
    match = _LINE_ID.match(custom_id) if isinstance(custom_id, str) else None
    return int(match.group(1)) if match else None
