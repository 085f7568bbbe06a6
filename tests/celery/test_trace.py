"""``traceparent`` from the publisher, through the broker, to a real worker's reports."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from crucible_storage import StorageClient
from crucible_storage.celery import install
from opentelemetry.sdk.trace import TracerProvider

from tests.celery.conftest import delete_queues, ready, spawn_worker, unique_queue
from tests.celery.tasks import make_app

pytestmark = pytest.mark.e2e


class Recorder(BaseHTTPRequestHandler):
    """Keeps each request's headers and body; answers 404, which the reports only log."""

    seen: list[tuple[dict[str, str], dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b"{}"
        self.seen.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
        answer = json.dumps({"title": "Not Found", "status": 404}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_PATCH = do_PUT = do_POST

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[dict[str, str], dict[str, Any]]]]]:
    seen: list[tuple[dict[str, str], dict[str, Any]]] = []
    handler = type("Recording", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_workers_reports_continue_the_publishers_trace(
    recorder: tuple[str, list[tuple[dict[str, str], dict[str, Any]]]], tmp_path: Path
) -> None:
    url, seen = recorder
    queue = unique_queue("trace")
    worker = spawn_worker(queue, url, tmp_path, label="trace", concurrency=1)
    app = make_app(queue)
    installation = install(app, client=StorageClient(url, retries=0))
    tracer = TracerProvider().get_tracer("a publisher")
    try:
        ready(worker)
        with tracer.start_as_current_span("publish") as span:
            app.tasks["crucible_test.succeed"].delay("eval_traced", "now")
        trace_id = format(span.get_span_context().trace_id, "032x")
        deadline = time.monotonic() + 30
        while not any(body.get("task_state") == "SUCCESS" for _, body in seen):
            assert time.monotonic() < deadline, worker.text()
            time.sleep(0.1)
    finally:
        worker.stop()
        installation.uninstall()
        delete_queues(queue)
        app.close()

    # STARTED and SUCCESS come from the worker's pool child, not from this process.
    ran = [h for h, body in seen if body.get("task_state") in ("STARTED", "SUCCESS")]
    assert len(ran) == 2
    assert [h.get("traceparent", "").split("-")[1:2] for h in ran] == [[trace_id]] * 2
