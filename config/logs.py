"""Log lines: a UTC timestamp and a level on every line, as text or as one JSON object per line.

`settings.LOGGING` uses these for every process: the web process through Django, the Celery worker
and beat because `config/celery.py` hands Celery's logging set-up to the same configuration.
TOLLGATE_LOG_FORMAT=json is meant for production log collectors.
"""

import json
import logging
from datetime import UTC, datetime

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s [%(processName)s] %(name)s: %(message)s"

# Celery's lines for each run of the frequent housekeeping tasks ("Sending due task", "received",
# "succeeded in"): the usage drain alone runs every 2 s, so at INFO they would be most of the console.
ROUTINE_TASKS = (
    "billing.usage_drain",
    "billing.alert_deliveries_due",
    "billing.budgets_evaluate_all",
    "billing.budget_evaluate",
    "billing.budget_counters_reconcile",
)
# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into JSON.
# (uvicorn's color_message repeats the message with terminal colours.)
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName", "color_message"}


def utc_time(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`2026-12-03T12:38:15.944Z INFO    [MainProcess] relay.usage: replayed 3 spooled usage records`."""

    def __init__(self, *args, **kwargs):
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record, datefmt=None):
        return utc_time(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, process, message, then `extra=` fields and the traceback."""

    def format(self, record):
        entry = {
            "time": utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class RoutineTasksAtDebug(logging.Filter):
    """Celery's per-run INFO lines of ROUTINE_TASKS become DEBUG lines: shown only when DEBUG is on."""

    def filter(self, record):
        if record.levelno != logging.INFO or not record.name.startswith("celery"):
            return True
        message = record.getMessage()
        if not any(task in message for task in ROUTINE_TASKS):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
