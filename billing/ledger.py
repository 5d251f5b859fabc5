"""The exactly-once usage ledger: idempotent bulk inserts, and the drain of the Redis stream.

At-least-once delivery (stream entries are acknowledged only after the insert commits) plus an
insert keyed by request id (conflicts ignored) gives an exact ledger: a batch retried after a
crash inserts nothing twice.

One bad record never holds up the others: each record is checked against the ledger's columns before
the insert (types, ranges, lengths), and a batch the database still refuses is split in halves, each in
a savepoint, down to the records it refuses. Those records are parked in UsageDeadLetter with the
reason, in the same transaction as the rest of the batch, and the operator is told (log at ERROR,
email at most hourly); nothing is dropped silently.
"""

import gc
import logging
import math
import os
import re
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone as dt_timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import orjson
from django.conf import settings
from django.db import DataError, IntegrityError, connection, models, transaction

from accounts.models import Organization
from billing.metrics import DEAD_LETTERS, INGESTED
from billing.models import UsageDeadLetter, UsageEvent
from billing.rollups import rollup_add
from wire import redis_keys
from wire.usage import UsageRecord

log = logging.getLogger(__name__)

STREAM, GROUP = redis_keys.USAGE_STREAM, redis_keys.USAGE_GROUP

# Every column but the primary key, and its default for records that do not carry it.
_COLUMNS = [field for field in UsageEvent._meta.concrete_fields if not field.primary_key]
_DEFAULTS = {field.attname: field.get_default() for field in _COLUMNS}  # shared, never mutated
_COST_PLACES = Decimal(1).scaleb(-UsageEvent._meta.get_field("cost_display").decimal_places)


def _row(record: dict) -> dict:
    """A stream record as ledger column values (attname -> value): a copy, since a caller may retry
    with the same records, with its time as a UTC datetime and its display cost as stored."""
    row = {**_DEFAULTS, **record}
    row["created_at"] = datetime.fromtimestamp(record["created_at"], dt_timezone.utc)  # positional: keyword parsing costs more
    if row["cost_display"] is not None:
        # Rounded here as the column would round it, so the rollups add exactly what the ledger keeps.
        row["cost_display"] = Decimal(row["cost_display"]).quantize(_COST_PLACES, rounding=ROUND_HALF_UP)
    return row


# --- Checking records against the ledger's columns ----------------------------------------------

# Ranges of Django's integer fields (the same on every database Django supports).
# Subclasses before their bases (a BigIntegerField is an IntegerField): the first match wins.
_INT_RANGES = {
    models.PositiveSmallIntegerField: (0, 32767), models.PositiveIntegerField: (0, 2147483647),
    models.SmallIntegerField: (-32768, 32767), models.BigIntegerField: (-(2**63), 2**63 - 1),
    models.IntegerField: (-2147483648, 2147483647), models.ForeignKey: (1, 2**63 - 1),
}
LATEST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z, the last instant a datetime column holds
MAX_TRAIL = 100  # attempts in attempt_trail; the relay makes a handful
DEAD_LETTER_MAX_CHARS = 65536


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _int_check(low: int, high: int, null: bool):
    def check(value):
        if value is None and null:
            return None
        if type(value) is not int:
            return f"not an integer: {_short(value)}"
        if not low <= value <= high:
            return f"{_short(value)} is out of range ({low}..{high})"
        return None

    return check


def _text_check(max_length: int | None, required: bool):
    def check(value):
        if type(value) is not str:
            return f"not a string: {_short(value)}"
        if max_length is not None and len(value) > max_length:
            return f"longer than {max_length} characters"
        if "\x00" in value:
            return "contains a NUL character"
        if required and not value:
            return "empty"
        return None

    return check


def _decimal_check(field):
    limit = Decimal(10) ** (field.max_digits - field.decimal_places)

    def check(value):
        if value is None and field.null:
            return None
        if type(value) not in (str, int):
            return f"not a decimal: {_short(value)}"
        try:
            amount = Decimal(value)
        except (InvalidOperation, ValueError):
            return f"not a decimal: {_short(value)}"
        if not amount.is_finite() or amount < 0 or amount >= limit:
            return f"{_short(value)} is out of range (0..{limit})"  # a cost or rate is never negative
        return None

    return check


def _time_check(value):
    if type(value) not in (int, float) or not (math.isfinite(value) and 0 <= value <= LATEST_TIMESTAMP):
        return f"not a time: {_short(value)}"
    return None


def _bool_check(value):
    return None if type(value) is bool else f"not a boolean: {_short(value)}"


def _trail_check(value):
    if type(value) is not list or len(value) > MAX_TRAIL:  # its items are read defensively (billing.views)
        return f"not a list of at most {MAX_TRAIL} attempts"
    return None


def _column_check(field):
    if field.attname == "created_at":
        return _time_check
    if isinstance(field, models.BooleanField):
        return _bool_check
    if isinstance(field, models.DecimalField):
        return _decimal_check(field)
    if isinstance(field, models.JSONField):
        return _trail_check
    if isinstance(field, models.CharField):
        return _text_check(field.max_length, required=field.attname == "request_id")
    for kind, (low, high) in _INT_RANGES.items():
        if isinstance(field, kind):
            return _int_check(low, high, field.null)
    raise TypeError(f"no check for the ledger column {field.attname}")  # a new column needs one


_CHECKS = {field.attname: _column_check(field) for field in _COLUMNS}
# Keys a record must carry: its id, and the columns with neither a default nor NULL.
_REQUIRED = ["request_id", *(field.attname for field in _COLUMNS if _DEFAULTS[field.attname] is None and not field.null)]


# The common case in one pass, without a call per column: ints in range, short strings, booleans,
# NULLs where allowed, plain decimals. Anything else (and every problem) goes to the column's check.
_INT_BOUNDS = {f.attname: _INT_RANGES[next(k for k in _INT_RANGES if isinstance(f, k))]
               for f in _COLUMNS if any(isinstance(f, k) for k in _INT_RANGES)}
_TEXT_LENGTHS = {f.attname: f.max_length for f in _COLUMNS if isinstance(f, models.CharField) and f.attname != "request_id"}
_DECIMALS = frozenset(f.attname for f in _COLUMNS if isinstance(f, models.DecimalField))
_BOOLEANS = frozenset(f.attname for f in _COLUMNS if isinstance(f, models.BooleanField))
_NULLABLE = frozenset(f.attname for f in _COLUMNS if f.null)
# Below every decimal column's limit (10 integer digits); the database rounds the fraction to its scale.
_PLAIN_DECIMAL = re.compile(r"\d{1,%d}(?:\.\d+)?\Z" % min(f.max_digits - f.decimal_places for f in _COLUMNS if isinstance(f, models.DecimalField)))


def record_problem(record) -> str | None:
    """Why the ledger cannot take this record, or None: checked per column, as the insert would be
    (~2 µs for a good record)."""
    if type(record) is not dict:
        return f"not a record: {_short(record)}"
    for name in _REQUIRED:
        if name not in record:
            return f"{name}: missing"
    for name, value in record.items():
        kind = type(value)
        if kind is int:
            bounds = _INT_BOUNDS.get(name)
            if bounds is not None and bounds[0] <= value <= bounds[1]:
                continue
        elif kind is str:
            length = _TEXT_LENGTHS.get(name)
            if length is not None:
                if len(value) <= length and "\x00" not in value:
                    continue
            elif name in _DECIMALS and _PLAIN_DECIMAL.match(value):
                continue
        elif value is None:
            if name in _NULLABLE:
                continue
        elif kind is bool and name in _BOOLEANS:
            continue
        check = _CHECKS.get(name)  # keys the ledger has no column for are ignored, as on insert
        if check is not None:
            problem = check(value)
            if problem is not None:
                return f"{name}: {problem}"
    return None


def usage_dead_letters_alert() -> int:
    """Email the operators (settings.ADMINS and the active superusers) how many usage records were
    parked in the last hour; returns the number of recipients. Queued at most hourly by the ingest."""
    from datetime import timedelta

    from django.core.mail import get_connection, send_mail
    from django.utils import timezone
    from django.utils.translation import gettext as _

    from accounts.models import User

    since = timezone.now() - timedelta(seconds=DEAD_LETTER_ALERT_SECONDS)
    parked = UsageDeadLetter.objects.filter(created_at__gte=since).count()
    recipients = sorted({email for name, email in settings.ADMINS} | set(
        User.objects.filter(is_superuser=True, is_active=True).exclude(email="").values_list("email", flat=True)
    ))
    if not parked or not recipients:
        return 0
    link = settings.TOLLGATE_PUBLIC_URL.rstrip("/") + "/admin/billing/usagedeadletter/"
    send_mail(
        subject=_("Tollgate: %(n)s usage records could not enter the ledger") % {"n": parked},
        message=_(
            "In the last hour %(n)s usage records were refused by the ledger and parked with the reason, "
            "so that the rest of their batches could be recorded. Their cost is not in the ledger or the budgets "
            "until they are dealt with.\n\nSee them in the admin: %(link)s\n"
        ) % {"n": parked, "link": link},
        from_email=None, recipient_list=recipients, connection=get_connection(fail_silently=False, timeout=15),
    )
    return len(recipients)


# --- Ingest --------------------------------------------------------------------------------------

# What a record can make the database (or the conversion before it) refuse; anything else (a lost
# connection, a timeout) fails the whole batch, which stays in the stream and is retried.
_RECORD_ERRORS = (DataError, IntegrityError, ValueError, TypeError, OverflowError, ArithmeticError)


def usage_ingest(records: list, *, sources: list[str] | None = None) -> int:
    """Insert records; returns how many were new. Safe to call again with the same records.

    Only the rows actually inserted are added to the rollups, in the same transaction. A record the
    ledger cannot take is parked in UsageDeadLetter (with `sources[i]`, its stream entry id, by which
    a retried entry's records are parked once) and the others are ingested.
    """
    if not records:
        return 0
    records = [r.as_fields() if type(r) is UsageRecord else r for r in records]  # the embedded sink's
    sources = sources or [""] * len(records)
    parked: list[tuple] = []  # (record, reason, source)
    valid: dict[str, tuple] = {}  # request_id -> (record, source)
    for record, source in zip(records, sources):
        problem = record_problem(record)
        if problem is not None:
            parked.append((record, problem, source))
        else:
            valid[record["request_id"]] = (record, source)
    org_ids = {r["organization_id"] for r in records if type(r) is dict and type(r.get("organization_id")) is int}
    # An organization deleted meanwhile takes its usage with it (as its ledger rows cascade).
    live_orgs = set(Organization.objects.filter(pk__in=org_ids).values_list("pk", flat=True))
    items = []
    for record, source in valid.values():
        if record["organization_id"] in live_orgs:
            try:
                items.append((record, source, _row(record)))
            except _RECORD_ERRORS as exc:
                parked.append((record, _refusal(exc), source))
    with transaction.atomic():
        inserted = _ingest_isolating(items, parked)
        if parked:
            parked = _park(parked, live_orgs)
    INGESTED.inc(inserted)
    if parked:
        DEAD_LETTERS.inc(len(parked))
        _tell_operator(parked)
    return inserted


def _ingest_isolating(items: list[tuple], parked: list) -> int:
    """Insert (record, source, row) items in a savepoint; if the database refuses, split the batch in
    halves and try each, down to the single records it refuses, which are parked."""
    if not items:
        return 0
    try:
        with transaction.atomic():  # a savepoint: a refusal rolls back only this part
            return _insert([row for _, _, row in items])
    except _RECORD_ERRORS as exc:
        if len(items) == 1:
            record, source, _ = items[0]
            parked.append((record, _refusal(exc), source))
            return 0
        middle = len(items) // 2
        return _ingest_isolating(items[:middle], parked) + _ingest_isolating(items[middle:], parked)


def _insert(rows: list[dict]) -> int:
    if connection.vendor == "postgresql":
        inserted = _insert_postgresql(rows)
        fresh = [row for row in rows if row["request_id"] in inserted]
    else:
        existing = set(UsageEvent.objects.filter(request_id__in=[r["request_id"] for r in rows]).values_list("request_id", flat=True))
        fresh = [row for row in rows if row["request_id"] not in existing]
        events = [UsageEvent(**{field.attname: row[field.attname] for field in _COLUMNS}) for row in fresh]
        # No ignore_conflicts: SQLite's INSERT OR IGNORE also skips rows that fail a CHECK (a negative
        # count), silently. The existing rows are known: the transaction holds the write lock (IMMEDIATE).
        UsageEvent.objects.bulk_create(events, batch_size=1000)
    rollup_add(fresh)
    return len(fresh)


def _refusal(exc: Exception) -> str:
    detail = (str(exc).strip().splitlines() or [""])[0]
    return f"refused by the database: {exc.__class__.__name__}: {detail}"[:300]


def _as_text(record) -> str:
    try:
        text = orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
        text = repr(record)
    return text if len(text) <= DEAD_LETTER_MAX_CHARS else text[:DEAD_LETTER_MAX_CHARS] + "…[cut]"


def _park(parked: list[tuple], live_orgs: set[int]) -> list[tuple]:
    """Write the dead letters; returns those that are new. A stream entry taken again (its worker died
    before acknowledging it) parks its records once: letters are known by entry and request id."""
    known = set(UsageDeadLetter.objects.filter(stream_entry__in={source for _, _, source in parked if source})
                .values_list("stream_entry", "request_id"))
    letters, new = [], []
    for record, reason, source in parked:
        fields = record if type(record) is dict else {}
        org_id, request_id = fields.get("organization_id"), fields.get("request_id")
        request_id = request_id.replace("\x00", "")[:64] if type(request_id) is str else ""
        if source and (str(source)[:40], request_id) in known:
            continue
        new.append((record, reason, source))
        letters.append(UsageDeadLetter(
            organization_id=org_id if type(org_id) is int and org_id in live_orgs else None,
            request_id=request_id, stream_entry=str(source)[:40], reason=reason.replace("\x00", "")[:300],
            record=_as_text(record).replace("\x00", ""),
        ))
    UsageDeadLetter.objects.bulk_create(letters)
    return new


DEAD_LETTER_ALERT_KEY = redis_keys.DEAD_LETTER_ALERT
DEAD_LETTER_ALERT_SECONDS = 3600


def _tell_operator(parked: list[tuple]) -> None:
    """Log every parked record at ERROR (ids and reasons: records carry no secrets), and email the
    operators at most once an hour (billing.tasks.usage_dead_letters_alert)."""
    summary = "; ".join(
        f"{(r.get('request_id') if type(r) is dict else None) or '?'} ({source or 'direct'}): {reason}" for r, reason, source in parked
    )
    log.error("usage ledger: %d record(s) parked in billing.UsageDeadLetter: %s", len(parked), summary[:2000])
    from django.core.cache import cache

    from billing.tasks import usage_dead_letters_alert  # the task module imports this one

    try:
        if cache.add(DEAD_LETTER_ALERT_KEY, 1, DEAD_LETTER_ALERT_SECONDS):
            usage_dead_letters_alert.delay()
    except Exception as exc:  # cache or broker down: the log line above stands
        log.warning("could not queue the dead-letter email: %s", exc.__class__.__name__)


def _insert_postgresql(rows: list[dict]) -> set[str]:
    """One INSERT … SELECT FROM json_to_recordset(batch) ON CONFLICT DO NOTHING RETURNING: the database
    says which rows were new, so concurrent drains can never both count one.

    The batch travels as one JSON text (orjson, in C) that PostgreSQL parses; binding it as one array
    per column cost ~6 µs of client CPU per record in psycopg's Python array dumper (JSON: ~0.2 µs).
    """
    if not rows:
        return set()
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in _COLUMNS)
    record_type = ", ".join(f"{quote(field.attname)} {field.db_type(connection)}" for field in _COLUMNS)
    fields = ", ".join(quote(field.attname) for field in _COLUMNS)
    table = quote(UsageEvent._meta.db_table)
    # Datetimes become RFC 3339 with microseconds, Decimals exact strings; keys not in the record type are ignored.
    batch = orjson.dumps(rows, default=str).decode()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {fields} FROM json_to_recordset(%s::json) AS r({record_type}) "
            f"ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
            [batch],
        )
        return {request_id for (request_id,) in cursor.fetchall()}


def _records(fields: dict | None) -> list:
    """A stream entry holds a batch ("b": a JSON list) or, from older writers, one record ("r"). An entry
    that cannot be read comes back as its raw text, which the ingest parks (it is not a record)."""
    if not fields:
        return []
    try:
        if b"b" in fields:
            batch = orjson.loads(fields[b"b"])
            return batch if type(batch) is list else [batch]
        if b"r" in fields:
            return [orjson.loads(fields[b"r"])]
    except orjson.JSONDecodeError:
        pass
    return [repr(fields)[:DEAD_LETTER_MAX_CHARS]]


@contextmanager
def _gc_paused():
    """No cyclic garbage collection while a batch is decoded and ingested.

    A batch allocates ~40k containers (decoded records, row copies) that all live until it ends, which
    triggers dozens of collections, some of them full passes over the worker's whole heap: ~5 µs per
    record, a third of the drain's CPU (measured). The records hold no cycles, so reference counting
    frees them anyway; collection resumes after the batch.
    """
    if not gc.isenabled():  # someone else's choice: leave it as it is
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_group(client) -> None:
    import redis

    try:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _ingest_entries(client, entries: list) -> int:
    """Ingest stream entries, then acknowledge and delete them (after the commit); returns the records."""
    with _gc_paused():
        records, sources = [], []
        for entry_id, fields in entries:
            batch = _records(fields)
            records += batch
            sources += [entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)] * len(batch)
        usage_ingest(records, sources=sources)
    ids = [entry_id for entry_id, _ in entries]
    pipe = client.pipeline(transaction=False)  # one round trip for both
    pipe.xack(STREAM, GROUP, *ids)
    pipe.xdel(STREAM, *ids)
    pipe.execute()
    return len(records)


def usage_reclaim(client, *, batch: int = 20, max_batches: int = 500) -> int:
    """Ingest the entries that consumers read and never acknowledged (a worker killed mid-batch), once
    idle for TOLLGATE_USAGE_CLAIM_IDLE_MS; returns the number of records. The periodic safety net."""
    ensure_group(client)
    consumer = consumer_name()
    total, cursor = 0, "0-0"
    for _ in range(max_batches):
        cursor, claimed, _ = client.xautoclaim(
            STREAM, GROUP, consumer, min_idle_time=settings.TOLLGATE_USAGE_CLAIM_IDLE_MS, start_id=cursor, count=batch,
        )
        if claimed:
            total += _ingest_entries(client, claimed)
        if cursor in (b"0-0", "0-0"):
            break
    return total


def usage_drain(client, *, batch: int = 20, max_batches: int = 500) -> int:
    """Reclaim, then move every waiting stream entry into the ledger without blocking; acknowledge each
    batch only after it commits. `batch` counts stream entries (each up to 500 records); returns the
    number of records. (The worker's consumer, usage_consume, does this continuously.)"""
    total = usage_reclaim(client, batch=batch)
    consumer = consumer_name()
    for _ in range(max_batches):
        response = client.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=batch)
        entries = response[0][1] if response else []
        if not entries:
            break
        total += _ingest_entries(client, entries)
    return total


RECLAIM_SECONDS = 30  # how often the consumer also looks for entries a dead consumer left pending


def usage_consume(client, stop, *, block_ms: int = 1000, batch: int = 20) -> None:
    """The long-running drain: wait on the stream (XREADGROUP … BLOCK) and ingest each entry as it
    arrives, so a finished request's row is in the ledger within one relay flush plus one insert.
    Returns when `stop` (a threading.Event) is set, within `block_ms`; errors propagate to the caller,
    which starts it again (billing.drain)."""
    ensure_group(client)
    consumer = consumer_name()
    # First what this process read and did not acknowledge (a failed insert, the database away): at
    # once, rather than after TOLLGATE_USAGE_CLAIM_IDLE_MS. Deleted entries come back empty and are
    # acknowledged too, so this ends.
    for _ in range(10_000):
        response = client.xreadgroup(GROUP, consumer, {STREAM: "0"}, count=batch)
        entries = response[0][1] if response else []
        if not entries:
            break
        _ingest_entries(client, entries)
    reclaim_at = 0.0
    while not stop.is_set():
        if time.monotonic() >= reclaim_at:
            usage_reclaim(client, batch=batch)
            reclaim_at = time.monotonic() + RECLAIM_SECONDS
        response = client.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=batch, block=block_ms)
        entries = response[0][1] if response else []
        if entries:
            _ingest_entries(client, entries)


def usage_backlog(client) -> dict:
    """The stream's backlog: entries waiting (not yet in the ledger), how many of them a consumer holds
    (read, not acknowledged), and the oldest one's age in seconds (None when there is none)."""
    pipe = client.pipeline(transaction=False)
    pipe.xlen(STREAM)
    pipe.xrange(STREAM, count=1)
    pipe.xpending(STREAM, GROUP)
    try:
        waiting, oldest, pending = pipe.execute()
    except Exception as exc:  # no stream or no group yet: nothing has been written
        import redis

        if not isinstance(exc, redis.ResponseError):
            raise
        return {"waiting": 0, "pending": 0, "oldest_age_seconds": None}
    age = None
    if oldest:
        entry_id = oldest[0][0]
        millis = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
        age = max(0.0, round(time.time() - millis / 1000, 3))
    return {"waiting": waiting, "pending": (pending or {}).get("pending", 0), "oldest_age_seconds": age}
