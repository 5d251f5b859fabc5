"""OpenTelemetry traces of /v1 requests (README "Traces"): spans reach a real OTLP/HTTP receiver on loopback
with the GenAI attributes, and the tracing code is not even loaded while no endpoint is configured."""

import dataclasses
import gzip
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from relay.observers import ObservedSink, traces_endpoint
from relay.tracing import RequestTracer
from tests.gateway import usage_record
from tests.relay.test_routing import MESSAGES, routed

ROOT = Path(__file__).resolve().parents[2]
SERVER, INTERNAL, CLIENT = 2, 1, 3  # Span.SpanKind in the OTLP protobuf


class OtlpReceiver:
    """A minimal OTLP/HTTP traces receiver: decodes each export request's protobuf into plain spans."""

    def __init__(self):
        self.spans: list[dict] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.paths.append(self.path)
                receiver._collect(request)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _collect(self, request) -> None:
        for resource_spans in request.resource_spans:
            service = {a.key: _value(a.value) for a in resource_spans.resource.attributes}.get("service.name")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append({
                        "name": span.name, "kind": span.kind, "trace": span.trace_id.hex(), "id": span.span_id.hex(),
                        "parent": span.parent_span_id.hex(), "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                        "error": span.status.code == 2, "service": service,
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                    })

    def trace_of(self, request_id: str) -> tuple[dict, list[dict]]:
        root = next(s for s in self.spans if s["attributes"].get("tollgate.request_id") == request_id)
        return root, [s for s in self.spans if s["parent"] == root["id"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _value(value):
    return getattr(value, value.WhichOneof("value"))


@pytest.fixture
def receiver():
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def tracer(relay_server, receiver):
    """The relay's sink hands its records to a tracer exporting to the receiver (as Runtime wires it)."""
    runtime = relay_server.relay.runtime
    tracer = RequestTracer(traces_endpoint(receiver.url))
    original = runtime.sink
    runtime.sink = ObservedSink(original, [tracer])
    yield tracer
    runtime.sink = original


def test_a_request_is_a_server_span_with_admission_and_attempt_spans(gateway, receiver, tracer):
    reply = gateway.client().chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)
    usage = reply.parse().usage
    tracer.close()  # builds the queued spans and exports them
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    root, children = receiver.trace_of(reply.headers["x-request-id"])
    assert root["name"] == "chat gpt-test" and root["kind"] == SERVER and root["parent"] == "" and not root["error"]
    assert root["service"] == "tollgate-relay"
    attributes = root["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.request.model"] == "gpt-test"
    assert attributes["gen_ai.response.model"] == "echo" and attributes["gen_ai.provider.name"] == "custom"
    assert attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens > 0
    assert attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens > 0
    assert (attributes["http.response.status_code"], attributes["tollgate.organization_id"]) == (200, gateway.org.pk)
    assert {"name": "admission", "kind": INTERNAL} in [{"name": c["name"], "kind": c["kind"]} for c in children]
    (attempt,) = [c for c in children if c["kind"] == CLIENT]
    assert attempt["name"] == "chat echo" and attempt["attributes"]["tollgate.deployment_id"] == int(reply.headers["x-tollgate-deployment"])
    assert attempt["attributes"]["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert all(c["trace"] == root["trace"] and root["start"] <= c["start"] <= c["end"] <= root["end"] for c in children)
    text = str(receiver.spans)
    assert gateway.secret not in text and "test-key" not in text


def test_retries_and_fallbacks_are_one_span_per_attempt_and_a_stream_has_its_span(gateway, receiver, tracer):
    _, (primary, fallback) = routed(gateway, "traced", [("fail-503", 1, 0), ("echo", 0, 1)])
    client = gateway.client()
    raw = client.chat.completions.with_raw_response.create(model="traced", messages=MESSAGES, stream=True)
    chunks = list(raw.parse())
    assert chunks
    tracer.close()
    root, children = receiver.trace_of(raw.headers["x-request-id"])
    assert root["attributes"]["tollgate.attempts"] == 2 and root["attributes"]["tollgate.stream"] is True
    attempts = sorted((c for c in children if c["kind"] == CLIENT), key=lambda c: c["attributes"]["tollgate.attempt"])
    assert [a["attributes"]["tollgate.deployment_id"] for a in attempts] == [primary.pk, fallback.pk]
    assert [a["attributes"]["http.response.status_code"] for a in attempts] == [503, 200]
    assert attempts[0]["error"] and not attempts[1]["error"] and attempts[0]["end"] <= attempts[1]["start"]
    (stream,) = [c for c in children if c["name"] == "stream"]
    assert stream["start"] >= attempts[1]["end"] and stream["end"] == root["end"]


def test_a_refused_request_is_an_error_span(gateway, receiver, tracer):
    import openai

    with pytest.raises(openai.NotFoundError) as refused:
        gateway.client().chat.completions.create(model="nope", messages=MESSAGES)
    tracer.close()
    root, children = receiver.trace_of(refused.value.response.headers["x-request-id"])
    assert root["error"] and root["attributes"]["error.type"] == "model_not_found"
    assert [c["name"] for c in children] == ["admission"]


def test_the_endpoint_follows_the_standard_variables(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    assert traces_endpoint("") is None
    assert traces_endpoint("http://collector:4318/") == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318")
    assert traces_endpoint("") == "http://base:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://signal:4318/custom")
    assert traces_endpoint("") == "http://signal:4318/custom"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert traces_endpoint("") is None


RUNTIME_CHECK = """
import sys, django
django.setup()
from relay.runtime import Runtime
runtime = Runtime()
# redis-py imports OpenTelemetry's metrics API when it is installed (its own, off unless set up); the
# tracing SDK, the exporter and relay.tracing are ours, and loaded only for an endpoint.
ours = ("relay.tracing", "opentelemetry.sdk.trace", "opentelemetry.exporter")
print(runtime.tracer is not None, any(name.startswith(ours) for name in sys.modules))
"""


@pytest.mark.parametrize("endpoint, expected", [("", "False False"), ("http://127.0.0.1:9/", "True True")])
def test_opentelemetry_is_loaded_only_when_an_endpoint_is_set(tmp_path, endpoint, expected):
    env = {name: value for name, value in __import__("os").environ.items() if not name.startswith("OTEL_")}
    env.update(TOLLGATE_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings", TOLLGATE_OTLP_ENDPOINT=endpoint)
    env.pop("DATABASE_URL", None), env.pop("REDIS_URL", None)
    run = subprocess.run([sys.executable, "-c", RUNTIME_CHECK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[-2] == expected


RECORD = usage_record(
    request_id="req_sampled", organization_id=1, key_id=2, model_name="gpt-test", deployment_id=3, provider="custom",
    upstream_model="echo", endpoint="chat", stream=False, status_code=200, error_type="", prompt_tokens=5,
    cached_tokens=0, completion_tokens=7, usage_source="provider", attempts=1, latency_ms=12, ttft_ms=None,
    created_at=1_767_225_600.0, cost=None, currency="", attempt_trail=[{"deployment": 3, "status": 200, "error": "", "ms": 9, "at": 2}],
)


@pytest.mark.parametrize("sampler, traced", [(None, True), ("always_off", False), ("traceidratio", False)])
def test_the_standard_sampler_variables_thin_the_traces(monkeypatch, receiver, sampler, traced):
    """Tracing every request costs CPU in the tracing thread (README "Traces"): OTEL_TRACES_SAMPLER keeps a share."""
    if sampler:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    tracer = RequestTracer(traces_endpoint(receiver.url))
    tracer.observe(RECORD)
    tracer.close()
    assert bool(receiver.spans) is traced
    if traced:
        root, children = receiver.trace_of("req_sampled")
        assert root["start"] == 1_767_225_600 * 10**9 and root["end"] - root["start"] == 12 * 10**6
        assert sorted((c["name"], c["start"] - root["start"], c["end"] - c["start"]) for c in children) == [
            ("admission", 0, 2 * 10**6), ("chat echo", 2 * 10**6, 9 * 10**6)]


@pytest.mark.django_db(transaction=True)
def test_shutdown_exports_the_last_spans_and_is_not_held_by_a_collector_away(settings, receiver):
    """Runtime.stop hands the last records to the collector; one that does not answer costs at most 5 s."""
    import asyncio
    import socket

    from relay.runtime import Runtime

    async def lifecycle(endpoint: str) -> Runtime:
        settings.TOLLGATE_OTLP_ENDPOINT = endpoint
        rt = Runtime()
        await rt.start()
        rt.sink.emit(dataclasses.replace(RECORD))  # as the pipeline does: the sink hands it to the observers
        await rt.stop()
        return rt

    asyncio.run(lifecycle(receiver.url))
    assert receiver.trace_of("req_sampled")[0]["name"] == "chat gpt-test"

    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        rt = asyncio.run(lifecycle(f"http://127.0.0.1:{silent.getsockname()[1]}"))
        assert rt.serving is False  # stopped although the export never completed
    finally:
        silent.close()
