"""Traces through the real app, read with the SDK's in-memory exporter.

On SQLite + files and on PostgreSQL + Redis (``backend_settings``): one server span per
request named by its route template, the SQL and Redis spans under it, the caller's
``traceparent`` continued; with ``OTEL_EXPORTER_OTLP_ENDPOINT`` unset, nothing at all.
The driver instrumentors patch classes for the whole process, so every test here ends
with them removed: other tests run in the same worker.
"""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from crucible_storage import StorageClient
from crucible_storage.celery import install
from litestar.testing import TestClient
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.propagate import inject
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from interfaces.http.app import create_app
from interfaces.settings import Settings
from tests.celery.tasks import make_app
from tests.services import free_port, serve_in_thread

COLLECTOR = "http://127.0.0.1:9"  # never reached: the tests keep the spans in memory
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def instrumentors() -> dict[str, BaseInstrumentor]:
    return {
        "asyncpg": AsyncPGInstrumentor(),
        "redis": RedisInstrumentor(),
        "sqlalchemy": SQLAlchemyInstrumentor(),
    }


def installed() -> set[str]:
    return {
        name
        for name, instrumentor in instrumentors().items()
        if instrumentor.is_instrumented_by_opentelemetry
    }


@pytest.fixture(autouse=True)
def no_patches_left() -> Iterator[None]:
    """Each test starts and ends without driver patches, whatever it did in between."""
    assert installed() == set(), "a driver patch leaked in from an earlier test"
    yield
    leaked = installed()
    for name in leaked:
        instrumentors()[name].uninstrument()
    assert leaked == set(), "the app left driver patches installed"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.clear()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def traced(settings: Settings) -> Settings:
    return settings.changed(observability={"otlp_endpoint": COLLECTOR})


def server_span(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    [span] = [s for s in spans if s.kind is SpanKind.SERVER and s.name == name]
    return span


def under(span: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    """The spans whose parent chain reaches ``span``, all in its trace."""
    assert span.context is not None
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    found = []
    for candidate in spans:
        parent = candidate.parent
        while parent is not None and parent.span_id != span.context.span_id:
            parent = by_id[parent.span_id].parent if parent.span_id in by_id else None
        if parent is not None:
            assert candidate.context is not None
            assert candidate.context.trace_id == span.context.trace_id
            found.append(candidate)
    return found


def is_sql(span: ReadableSpan) -> bool:
    attributes = span.attributes or {}
    return span.kind is SpanKind.CLIENT and attributes.get("db.system") in {
        "postgresql",
        "sqlite",
    }


def is_redis(span: ReadableSpan) -> bool:
    return span.kind is SpanKind.CLIENT and (span.attributes or {}).get("db.system") == "redis"


def test_a_request_is_a_server_span_by_route_with_its_sql_and_redis_spans_under_it(
    backend_settings: Settings, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    on_postgres = backend_settings.database.is_postgres
    with TestClient(create_app(traced(backend_settings), tracer_provider=provider)) as client:
        assert installed() == ({"asyncpg", "redis"} if on_postgres else {"redis", "sqlalchemy"})
        created = client.post(
            "/evaluations", json={"id": "trace-1", "code": "x"}, headers={"X-Request-ID": "req-7"}
        )
        assert created.status_code == 200
        read = client.get("/evaluations/trace-1")
        assert read.status_code == 200
        missing = client.get("/evaluations/trace-missing")
        assert missing.status_code == 404
    assert installed() == set(), "the app's stop removes what its start installed"

    spans = exporter.get_finished_spans()
    write = server_span(spans, "POST /evaluations")
    attributes = write.attributes or {}
    assert attributes["http.route"] == "/evaluations"
    assert attributes["http.status_code"] == 200
    assert attributes["request_id"] == "req-7"
    assert any(is_sql(span) for span in under(write, spans))

    reads = [s for s in spans if s.name == "GET /evaluations/{eval_id}"]
    statuses = sorted(str((s.attributes or {})["http.status_code"]) for s in reads)
    assert statuses == ["200", "404"]
    assert write.context is not None
    assert all(s.context and s.context.trace_id != write.context.trace_id for s in reads)
    if on_postgres:
        # The write's cache tombstone and fill, the read's cache hit.
        assert any(is_redis(span) for span in under(write, spans))
        assert all(any(is_redis(span) for span in under(read, spans)) for read in reads)


def test_a_traceparent_from_the_caller_continues_its_trace(
    backend_settings: Settings, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    with TestClient(create_app(traced(backend_settings), tracer_provider=provider)) as client:
        response = client.post(
            "/evaluations",
            json={"id": "trace-2", "code": "x"},
            headers={"traceparent": traceparent},
        )
        assert response.status_code == 200

    spans = exporter.get_finished_spans()
    server = server_span(spans, "POST /evaluations")
    assert server.context is not None and server.parent is not None
    assert f"{server.context.trace_id:032x}" == CALLER_TRACE
    assert f"{server.parent.span_id:016x}" == CALLER_SPAN
    assert server.parent.is_remote
    assert any(is_sql(span) for span in under(server, spans))


def test_one_trace_runs_from_the_callers_task_through_the_client_to_the_sql(
    backend_settings: Settings, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The caller's side as the client and the Celery integration run it: a task span,
    an instrumented httpx client injecting ``traceparent``, over a real socket."""
    tracer = provider.get_tracer("a celery worker")
    with (
        serve_in_thread(create_app(traced(backend_settings), tracer_provider=provider)) as base,
        httpx.Client(base_url=base) as http,
    ):
        HTTPXClientInstrumentor.instrument_client(http, tracer_provider=provider)
        with tracer.start_as_current_span("run_evaluation") as task:
            assert http.post("/evaluations", json={"id": "trace-3", "code": "x"}).is_success
            # A client that is not instrumented carries the context by hand.
            headers: dict[str, str] = {}
            inject(headers)
            assert httpx.get(f"{base}/evaluations/trace-3", headers=headers).is_success
        HTTPXClientInstrumentor.uninstrument_client(http)
        spans = finished_with(exporter, "POST /evaluations", "GET /evaluations/{eval_id}")

    in_task = under(task, spans)  # type: ignore[arg-type]
    names = {span.name for span in in_task}
    assert {"POST", "POST /evaluations", "GET /evaluations/{eval_id}"} <= names, names
    client_call = next(s for s in in_task if s.kind is SpanKind.CLIENT and s.name == "POST")
    write = server_span(spans, "POST /evaluations")
    assert write.parent is not None and client_call.context is not None
    assert write.parent.span_id == client_call.context.span_id
    assert any(is_sql(span) for span in under(write, spans))


def test_a_celery_task_and_its_reports_are_one_trace_down_to_the_sql(
    backend_settings: Settings, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The typed client injects the task's context, so the Celery integration's reports
    (eager mode: the signals run in the task's own context) continue the task's trace."""
    tracer = provider.get_tracer("a celery worker")
    route = "POST /evaluations/{eval_id}/celery-update"
    app = make_app("crucible-test-eager-unused", eager=True)
    with serve_in_thread(create_app(traced(backend_settings), tracer_provider=provider)) as base:
        installation = install(app, client=lambda: StorageClient(base, timeout=5.0))
        try:
            with StorageClient(base) as storage:
                evaluation_id = storage.evaluations.create("print(1)", status="queued").id
            with tracer.start_as_current_span("run_evaluation") as task:
                app.tasks["crucible_test.succeed"].delay(evaluation_id, "now").get()
        finally:
            installation.uninstall()
            app.close()
        spans = finished_with(exporter, route)

    reports = [span for span in under(task, spans) if span.name == route]  # type: ignore[arg-type]
    assert len(reports) >= 2, [span.name for span in spans]  # STARTED and SUCCESS at least
    assert all(any(is_sql(span) for span in under(report, spans)) for report in reports)


def finished_with(exporter: InMemorySpanExporter, *names: str) -> tuple[ReadableSpan, ...]:
    """The spans once the server ones named have ended: a server span ends after the
    response's last byte went out, so the caller may see the answer first."""
    deadline = time.monotonic() + 10
    while True:
        spans = exporter.get_finished_spans()
        if {span.name for span in spans} >= set(names) or time.monotonic() > deadline:
            return spans
        time.sleep(0.02)


def test_without_the_endpoint_nothing_is_installed_and_no_span_made(
    backend_settings: Settings, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    assert backend_settings.observability.otlp_endpoint is None
    app = create_app(backend_settings, tracer_provider=provider)
    with pytest.raises(KeyError):
        app.plugins.get("OpenTelemetryPlugin")
    with TestClient(app) as client:
        assert installed() == set()
        assert client.post("/evaluations", json={"id": "trace-4", "code": "x"}).status_code == 200
        assert client.get("/evaluations/trace-4").status_code == 200
    assert exporter.get_finished_spans() == ()


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver keeping each span's name and its process id."""

    received: list[tuple[str, int]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value for a in resource_spans.resource.attributes}
            pid = resource["process.pid"].int_value
            assert resource["service.name"].string_value == "crucible-storage"
            for scope_spans in resource_spans.scope_spans:
                self.received.extend((span.name, pid) for span in scope_spans.spans)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, int]]]]:
    received: list[tuple[str, int]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.e2e
def test_each_worker_of_serve_exports_its_spans_and_flushes_them_at_stop(
    tmp_path: Path, collector: tuple[str, list[tuple[str, int]]]
) -> None:
    """``serve --workers 2``: each worker process builds its own provider (uvicorn
    starts them fresh), and SIGTERM's shutdown flushes what the batch still holds."""
    endpoint, received = collector
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'storage.db'}",
        "FILE_STORAGE_PATH": str(tmp_path / "files"),
        "WORKERS": "2",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        # Nothing leaves before the stop: what arrives was flushed by the shutdown.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process",
        "CACHE_WARM_ON_START": "false",
    }
    with serve_workers(env, tmp_path / "server.log") as (base, parent_pid):
        for _ in range(20):
            with httpx.Client(base_url=base) as http:  # a new connection, any worker
                assert http.get("/evaluations").is_success
        assert received == []
    deadline = time.monotonic() + 20
    while not any(name == "GET /evaluations" for name, _ in received):
        assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
        time.sleep(0.1)
    pids = {pid for name, pid in received if name == "GET /evaluations"}
    assert parent_pid not in pids
    assert len([name for name, _ in received if name == "GET /evaluations"]) == 20


@contextmanager
def serve_workers(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, int]]:
    """``storage-service serve`` with its workers; yields its URL and the parent's pid.

    Waits longer than ``tests.services.start_server``: each worker imports the whole
    app in a fresh interpreter, which on a loaded machine takes tens of seconds.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli", "serve"],
            env={**env, "HOST": "127.0.0.1", "PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not _answers(f"{base}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("server did not start:\n" + log_path.read_text(errors="replace"))
            time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
