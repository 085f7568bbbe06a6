"""Retries: the policy on scripted answers, then against the real service stopped and
started mid-call, and behind a proxy that loses the answer to a committed write."""

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from crucible_storage import (
    AsyncStorageClient,
    Backoff,
    Conflict,
    InvalidRequest,
    ServerError,
    StorageClient,
    TransportError,
    Unavailable,
)
from crucible_storage.retry import retry_after

import tests.services
from tests.client.conftest import FAST, start_on
from tests.client.proxy import Proxy

RECORD: dict[str, object] = {
    "id": "r-1", "code": "x", "language": "python", "status": "queued", "output": None,
    "error": None, "output_truncated": False, "error_truncated": False,
    "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
    "started_at": None, "completed_at": None, "runtime_ms": None, "metadata": {},
    "celery_task_id": None, "retries": 0, "executor_id": None, "container_id": None,
    "exit_code": None, "timeout": None, "last_update": None, "retry_message": None,
    "final_failure": False, "version": 1,
}  # fmt: skip
NO_WAIT = Backoff(rng=lambda low, high: 0.0)


def scripted(
    *answers: httpx.Response | Exception,
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that gives ``answers`` in order and records every request."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


def test_a_write_is_retried_with_one_key_until_it_succeeds() -> None:
    transport, seen = scripted(
        httpx.ConnectError("refused"),
        httpx.Response(503, headers={"Retry-After": "0"}),
        httpx.Response(502),
        httpx.Response(200, json=RECORD),
    )
    with StorageClient("http://service", transport=transport, backoff=NO_WAIT) as client:
        assert client.evaluations.create("x", id="r-1").id == "r-1"
    assert len(seen) == 4
    assert len({r.headers["idempotency-key"] for r in seen}) == 1
    assert len({r.headers["x-request-id"] for r in seen}) == 1
    transport_two, again = scripted(httpx.Response(200, json=RECORD))
    with StorageClient("http://service", transport=transport_two) as client:
        client.evaluations.create("x", idempotency_key="mine")
    assert again[0].headers["idempotency-key"] == "mine"


def test_answers_that_are_final_are_not_retried() -> None:
    problem = {"type": "t", "title": "Invalid request", "status": 422, "detail": "d",
               "errors": [{"field": "status", "message": "unknown"}]}  # fmt: skip
    transport, seen = scripted(httpx.Response(422, json=problem))
    with (
        StorageClient("http://service", transport=transport, backoff=NO_WAIT) as client,
        pytest.raises(InvalidRequest) as refused,
    ):
        client.evaluations.update("r-1", status="exploded")
    assert (refused.value.field, len(seen)) == ("status", 1)

    transport, seen = scripted(httpx.Response(409, json={"title": "Evaluation already exists"}))
    with (
        StorageClient("http://service", transport=transport, backoff=NO_WAIT) as client,
        pytest.raises(Conflict),
    ):
        client.evaluations.create("x", id="r-1")
    assert len(seen) == 1


def test_a_key_in_flight_is_waited_for() -> None:
    transport, seen = scripted(
        httpx.Response(409, headers={"Retry-After": "0"}), httpx.Response(200, json=RECORD)
    )
    with StorageClient("http://service", transport=transport, backoff=NO_WAIT) as client:
        client.evaluations.create("x")
    assert len(seen) == 2


def test_retries_are_bounded_and_typed() -> None:
    transport, seen = scripted(*[httpx.Response(503)] * 3)
    with (
        StorageClient("http://s", transport=transport, retries=2, backoff=NO_WAIT) as client,
        pytest.raises(Unavailable) as unavailable,
    ):
        client.evaluations.get("r-1")
    assert (unavailable.value.status, len(seen)) == (503, 3)
    assert isinstance(unavailable.value, ServerError)

    transport, seen = scripted(*[httpx.ConnectTimeout("slow")] * 2)
    with (
        StorageClient("http://s", transport=transport, retries=1, backoff=NO_WAIT) as client,
        pytest.raises(TransportError),
    ):
        client.statistics()
    assert len(seen) == 2


def test_an_iterator_upload_is_sent_once() -> None:
    transport, seen = scripted(httpx.Response(500), httpx.Response(200, json=RECORD))
    with StorageClient("http://s", transport=transport, backoff=NO_WAIT) as client:
        with pytest.raises(ServerError):
            client.payloads.upload("r-1", iter([b"a", b"b"]))
        assert len(seen) == 1
        client.payloads.upload("r-1", b"ab")  # bytes can be sent again
    assert seen[1].headers["content-type"] == "application/octet-stream"


def test_retry_after_in_seconds_and_as_a_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after("3") == 3.0
    assert retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after("soon") is None
    backoff = Backoff(base=1.0, cap=4.0, rng=lambda low, high: high)
    assert [backoff.delay(n) for n in range(5)] == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_the_trace_context_travels() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    transport, seen = scripted(httpx.Response(200, json=RECORD))
    tracer = TracerProvider().get_tracer("test")
    with (
        tracer.start_as_current_span("task") as span,
        StorageClient("http://s", transport=transport) as client,
    ):
        client.evaluations.get("r-1")
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert trace_id in seen[0].headers["traceparent"]


@pytest.mark.anyio
async def test_the_async_client_retries_the_same_way() -> None:
    seen: list[httpx.Request] = []
    answers = [httpx.Response(503), httpx.Response(200, json=RECORD)]

    async def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    async with AsyncStorageClient(
        "http://s", transport=httpx.MockTransport(handle), backoff=NO_WAIT
    ) as client:
        assert (await client.evaluations.update("r-1", exit_code=0)).id == "r-1"
    assert len({r.headers["idempotency-key"] for r in seen}) == 1 == len(seen) - 1


# ----------------------------------------------------- the real service, stopped


@pytest.mark.e2e
def test_a_call_survives_a_restart_of_the_service(
    service_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = tests.services.free_port()
    process, base = start_on(port, service_env, tmp_path / "first.log", monkeypatch)
    process.kill()
    process.wait(timeout=20)
    results: list[object] = []
    patient = Backoff(base=0.5, cap=2.0)
    with StorageClient(base, retries=40, backoff=patient) as client:
        call = threading.Thread(
            target=lambda: results.append(client.evaluations.create("x", id="restarted"))
        )
        call.start()  # fails to connect, backs off, tries again...
        process, _ = start_on(port, service_env, tmp_path / "second.log", monkeypatch)
        try:
            call.join(timeout=120)
            assert [getattr(r, "id", r) for r in results] == ["restarted"]
            page = client.evaluations.list(id_prefix="restarted")
            assert page.total == 1
        finally:
            process.terminate()
            process.wait(timeout=20)


# ------------------------------------------------- an answer lost after the commit


@pytest.fixture
def proxy(app_server: str) -> Iterator[Proxy]:
    losing = Proxy(app_server)
    yield losing
    losing.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_write_whose_answer_is_lost_is_applied_once(proxy: Proxy, kind: str) -> None:
    from tests.client.conftest import open_client

    for client in open_client(kind, f"http://127.0.0.1:{proxy.port}", backoff=FAST):
        prefix = f"lost-{uuid.uuid4().hex[:8]}"
        proxy.armed.set()
        created = client.evaluations.create("x", metadata={"prefix": prefix})
        assert proxy.dropped == 1
        every = [e for e in client.evaluations.iterate() if e.metadata.get("prefix") == prefix]
        assert [e.id for e in every] == [created.id]

        proxy.armed.set()
        appended = client.logs.append(created.id, "once\n")
        assert proxy.dropped == 2
        assert appended.offset == 0
        assert client.logs.get(created.id).content == "once\n"
