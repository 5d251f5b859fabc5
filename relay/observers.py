"""What watches finished requests besides the ledger: the metrics, the access log and the traces.

The usage sink hands each record to the observers as well (`ObservedSink`); a request pays a list
append per observer, and `run_observers` folds what gathered into metrics and log lines once a
second, outside every request.
"""

import asyncio
import logging
import os

FLUSH_SECONDS = 1.0

log = logging.getLogger(__name__)
access = logging.getLogger("tollgate.access")


class ObservedSink:
    """A usage sink that also hands each record to the observers (same interface as relay.usage's sinks)."""

    def __init__(self, sink, observers):
        self._sink, self._observers = sink, tuple(observers)

    def emit(self, record) -> None:
        self._sink.emit(record)
        for observer in self._observers:
            observer.observe(record)

    def __getattr__(self, name):
        return getattr(self._sink, name)


async def run_observers(observers) -> None:
    """Runs for the life of the process."""
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        flush_observers(observers)


def flush_observers(observers) -> None:
    for observer in observers:
        try:
            observer.flush()
        except Exception:  # noqa: BLE001 - an observer never takes the relay down
            log.exception("%s failed to flush", observer.__class__.__name__)


class AccessLog:
    """One `tollgate.access` line per /v1 request (TOLLGATE_ACCESS_LOG): who, which model, the outcome,
    tokens and cost. In JSON format (TOLLGATE_LOG_FORMAT=json) the fields are the line's own keys.
    Nothing secret is in a usage record: key ids, never key material; no prompt or answer text."""

    FIELDS = ("request_id", "organization_id", "key_id", "model_name", "deployment_id", "endpoint", "stream", "status_code",
              "error_type", "prompt_tokens", "completion_tokens", "cached_tokens", "latency_ms", "ttft_ms", "attempts", "cost",
              "currency", "usage_source")

    def __init__(self):
        self._pending: list = []

    def observe(self, record) -> None:
        self._pending.append(record)

    def flush(self) -> None:
        records, self._pending = self._pending, []
        for record in records:
            fields = {name: getattr(record, name) for name in self.FIELDS}
            access.info(
                "%s org=%s key=%s model=%s %s %s %d ms tokens=%s+%s cost=%s %s",
                fields["request_id"], fields["organization_id"], fields["key_id"], fields["model_name"] or "-",
                fields["endpoint"], fields["status_code"], fields["latency_ms"] or 0, fields["prompt_tokens"],
                fields["completion_tokens"], fields["cost"] or "-", fields["currency"] or "", extra=fields,
            )


def traces_endpoint(configured: str) -> str | None:
    """Where spans go: TOLLGATE_OTLP_ENDPOINT (a collector's base URL, /v1/traces added like
    OTEL_EXPORTER_OTLP_ENDPOINT), else what the OpenTelemetry variables say; None when tracing is off."""
    if configured:
        return configured.rstrip("/") + "/v1/traces"
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true" or os.environ.get("OTEL_TRACES_EXPORTER", "") == "none":
        return None
    signal = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if signal:
        return signal
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + "/v1/traces" if base else None
