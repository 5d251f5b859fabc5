"""Optional OpenTelemetry traces of relayed requests, exported over OTLP/HTTP (README "Traces").

Off unless an endpoint is configured (TOLLGATE_OTLP_ENDPOINT, or the standard
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT). When off, nothing here is
imported by the relay and no request pays anything. When on, it is one more observer
(relay.observers): a request pays a list append; once a second the finished usage records go to a
worker thread that builds each request's spans after the fact, with the times the record kept:

    "{operation} {model}"  (SERVER)  the whole request, GenAI attributes: model, provider, tokens
    ├── "admission"        (INTERNAL) arrival to the first upstream attempt (keys, limits, budgets)
    ├── "{operation} {upstream model}" (CLIENT) one per upstream attempt (retries and fallbacks)
    └── "stream"           (INTERNAL) the first byte of a streamed answer to its end

The SDK's batch processor exports from its own thread: the event loop never waits on a collector.
No prompt or answer text and no key material is put in a span.
"""

import logging
import os
from concurrent.futures import ThreadPoolExecutor

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

log = logging.getLogger(__name__)

# Tollgate's endpoint names -> gen_ai.operation.name (GenAI semantic conventions).
OPERATIONS = {"chat": "chat", "messages": "chat", "completions": "text_completion", "embeddings": "embeddings",
              "count_tokens": "count_tokens"}
MS = 1_000_000  # nanoseconds


class RequestTracer:
    """An observer (relay.observers) that turns finished usage records into spans."""

    def __init__(self, endpoint: str, service_name: str = "tollgate-relay", exporter=None):
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name})
        self._provider = TracerProvider(resource=resource)  # its own provider: the process's global one is left alone
        self._provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=endpoint)))
        self._tracer = self._provider.get_tracer("tollgate.relay")
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollgate-traces")
        self._pending: list[dict] = []

    def observe(self, record: dict) -> None:
        self._pending.append(record)

    def flush(self) -> None:
        records, self._pending = self._pending, []
        if records:
            self._builder.submit(self._spans_for, records)

    def close(self) -> None:
        """Build what is queued and export every span (blocking: call it from a thread at shutdown)."""
        self.flush()
        self._builder.shutdown(wait=True)
        self._provider.shutdown()

    def _spans_for(self, records: list[dict]) -> None:
        for record in records:
            try:
                self._request_spans(record)
            except Exception:  # noqa: BLE001 - a trace must never cost anything else
                log.exception("traces: record %s not traced", record.request_id)

    def _request_spans(self, record: dict) -> None:
        start = int(record.created_at * 1e9)
        end = start + record.latency_ms * MS
        operation = OPERATIONS.get(record.endpoint, record.endpoint)
        model = record.model_name or "-"
        root = self._tracer.start_span(f"{operation} {model}", kind=SpanKind.SERVER, start_time=start, attributes=_request_attributes(record, operation))
        failed = record.status_code >= 400
        if failed:
            root.set_status(Status(StatusCode.ERROR))
        context = set_span_in_context(root)
        trail = record.attempt_trail
        first_attempt = start + trail[0].get("at", 0) * MS if trail else end
        self._tracer.start_span("admission", context=context, start_time=start).end(end_time=min(first_attempt, end))
        for number, attempt in enumerate(trail, 1):
            attempt_start = start + attempt.get("at", 0) * MS
            attempt_end = attempt_start + attempt["ms"] * MS
            answered = attempt["status"] < 400 and not attempt["error"]
            last = number == len(trail)
            span = self._tracer.start_span(
                f"{operation} {record.upstream_model if last and answered else model}", kind=SpanKind.CLIENT, context=context,
                start_time=attempt_start, attributes=_attempt_attributes(record, operation, attempt, number, last and answered),
            )
            if not answered:
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=attempt_end)
            if last and answered and record.stream:
                stream = self._tracer.start_span("stream", context=context, start_time=attempt_end)
                if record.ttft_ms is not None:
                    stream.set_attribute("tollgate.time_to_first_token_ms", record.ttft_ms)
                if failed:
                    stream.set_status(Status(StatusCode.ERROR))
                stream.end(end_time=max(end, attempt_end))
        root.end(end_time=end)


def _request_attributes(record: dict, operation: str) -> dict:
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": record.model_name or "",
        "gen_ai.usage.input_tokens": record.prompt_tokens,
        "gen_ai.usage.output_tokens": record.completion_tokens,
        "http.response.status_code": record.status_code,
        "tollgate.request_id": record.request_id,
        "tollgate.organization_id": record.organization_id,
        "tollgate.key_id": record.key_id,
        "tollgate.endpoint": record.endpoint,
        "tollgate.stream": bool(record.stream),
        "tollgate.attempts": record.attempts,
        "tollgate.usage_source": record.usage_source,
    }
    if record.provider:
        attributes["gen_ai.provider.name"] = attributes["gen_ai.system"] = record.provider
    if record.upstream_model and record.status_code < 400:
        attributes["gen_ai.response.model"] = record.upstream_model
    if record.cached_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = record.cached_tokens
    if record.deployment_id is not None:
        attributes["tollgate.deployment_id"] = record.deployment_id
    if record.error_type:
        attributes["error.type"] = record.error_type
    if record.ttft_ms is not None:
        attributes["tollgate.time_to_first_token_ms"] = record.ttft_ms
    if record.cost is not None:
        attributes["tollgate.cost"], attributes["tollgate.currency"] = record.cost, record.currency
    return attributes


def _attempt_attributes(record: dict, operation: str, attempt: dict, number: int, answered: bool) -> dict:
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": record.upstream_model if answered else record.model_name or "",
        "tollgate.deployment_id": attempt["deployment"],
        "tollgate.attempt": number,
        "http.response.status_code": attempt["status"],
    }
    if answered:
        attributes["gen_ai.provider.name"] = attributes["gen_ai.system"] = record.provider
        attributes["gen_ai.usage.input_tokens"] = record.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = record.completion_tokens
    elif attempt["error"]:
        attributes["error.type"] = attempt["error"]
    return attributes
