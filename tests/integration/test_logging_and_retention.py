"""JSON log lines (LOG_FORMAT=json) and the retention task inside the service's lifespan."""

import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from dishka import Provider, Scope, make_async_container, provide
from litestar.testing import TestClient

from application.ports.clock import Clock
from application.services.record_cache import RecordCache
from application.use_cases.cleanup import CleanupEvaluations
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from interfaces.http.app import create_app
from interfaces.http.retention import run_retention
from interfaces.log_config import configure_logging, reset_logging
from interfaces.providers import build_providers
from interfaces.settings import LogFormat, Settings
from tests.integration.conftest import ClientFactory


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("INFO", LogFormat.JSON, stream=stream)
    try:
        yield stream
    finally:
        reset_logging()


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.alone("reads every log line of the process")
def test_a_request_logs_one_json_access_line(
    client: TestClient[Any], json_logs: io.StringIO
) -> None:
    secret = "print('never log this code')"
    response = client.post(
        "/evaluations", json={"id": "log-1", "code": secret}, headers={"X-Request-ID": "req-7"}
    )
    assert response.status_code == 200
    access = [
        line
        for line in records(json_logs)
        if line["logger"] == "storage_service.access" and line.get("request_id") == "req-7"
    ]
    assert len(access) == 1, json_logs.getvalue()
    [line] = access
    assert (line["method"], line["route"], line["status"]) == ("POST", "/evaluations", 200)
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info" and "timestamp" in line
    assert "never log" not in json_logs.getvalue()


def test_stdlib_loggers_share_the_format_and_sensitive_fields_are_redacted(
    json_logs: io.StringIO,
) -> None:
    logging.getLogger("uvicorn.error").warning("Started server process")
    logging.getLogger("storage_service").info("saw %s", "it", extra={"code": "print(1)"})
    uvicorn_line, ours = records(json_logs)
    assert uvicorn_line["event"] == "Started server process"
    assert uvicorn_line["logger"] == "uvicorn.error"
    assert (ours["event"], ours["code"]) == ("saw it", "[redacted]")


def test_console_format_is_one_readable_line(json_logs: io.StringIO) -> None:
    stream = io.StringIO()
    configure_logging("INFO", LogFormat.CONSOLE, stream=stream)
    logging.getLogger("storage_service.access").info("GET /health 200 1.0ms request_id=r")
    [line] = stream.getvalue().splitlines()
    assert "GET /health 200 1.0ms request_id=r" in line
    assert "[storage_service.access]" in line


def test_console_tracebacks_show_no_local_variables(json_logs: io.StringIO) -> None:
    stream = io.StringIO()
    configure_logging("INFO", LogFormat.CONSOLE, stream=stream)

    def fails(code: str) -> None:
        raise RuntimeError("boom")

    secret = "print('never log " + "this code')"
    try:
        fails(secret)
    except RuntimeError:
        logging.getLogger("storage_service").exception("it failed")
    text = stream.getvalue()
    assert "RuntimeError: boom" in text
    assert "never log" not in text


class _Future:
    """Two days from now: every record is older than RETENTION_DAYS=1."""

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=2)


class FutureClock(Provider):
    clock = provide(_Future, provides=Clock, scope=Scope.APP, override=True)


def test_retention_days_runs_the_cleanup_inside_the_service(
    client: TestClient[Any], backend_settings: Settings
) -> None:
    for name in ("r-done", "r-running"):
        assert client.post("/evaluations", json={"id": name, "code": "x"}).is_success
        assert client.put(f"/evaluations/{name}", json={"status": "running"}).is_success
    assert client.put("/evaluations/r-done", json={"status": "completed", "output": "z" * 200_000})
    retained_settings = backend_settings.changed(retention={"days": 1, "interval_s": 0.2})
    with TestClient(create_app(retained_settings, FutureClock())) as retained:
        deadline = time.monotonic() + 10
        while retained.get("/evaluations/r-done").status_code != 404:
            assert time.monotonic() < deadline, "retention never removed r-done"
            time.sleep(0.1)
        assert retained.get("/evaluations/r-running").is_success
    assert not (backend_settings.storage.file_storage_path / "evaluations" / "r-done").exists()


@pytest.mark.anyio
async def test_retention_stops_between_two_batches_when_the_app_stops(
    make_client: ClientFactory, backend_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(cache={"warm_on_start": False})
    names = [f"r-stop-{i}" for i in range(3)]
    for name in names:
        assert client.post("/evaluations", json={"id": name, "code": "x"}).is_success
        assert client.put(f"/evaluations/{name}", json={"status": "completed"}).is_success
    execute = CleanupEvaluations.execute
    monkeypatch.setattr(  # one record a batch, so that there is a "between"
        CleanupEvaluations,
        "execute",
        lambda self, selection, **kw: execute(self, selection, batch_size=1, **kw),
    )
    stopping = anyio.Event()
    forget = RecordCache.forget

    async def forget_then_stop(
        cache: RecordCache, tenant: TenantId, evaluation_id: EvaluationId
    ) -> None:
        await forget(cache, tenant, evaluation_id)
        stopping.set()  # the app stops as the first batch ends

    monkeypatch.setattr(RecordCache, "forget", forget_then_stop)
    container = make_async_container(
        *build_providers(backend_settings), FutureClock(), context={Settings: backend_settings}
    )
    try:
        await run_retention(container, backend_settings, 1, stopping)
    finally:
        await container.close()

    reader = make_client(cache={"warm_on_start": False})
    found = [reader.get(f"/evaluations/{name}").status_code for name in names]
    assert sorted(found) == [200, 200, 404]
