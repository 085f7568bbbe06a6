"""``task_always_eager``: the task runs in the caller, with no publish and no worker.

Also what must hold whatever the service does: a report that cannot reach it never
fails the task, and the default mapping from a task to its evaluation.
"""

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from crucible_storage import StorageClient
from crucible_storage.celery import TaskCall, default_evaluation_id, install

from tests.celery.conftest import finished_with, new_evaluation, wait_for
from tests.celery.tasks import make_app
from tests.services import free_port


@pytest.fixture
def eager_app(storage_url: str) -> Iterator[Any]:
    app = make_app("crucible-test-eager-unused", eager=True)
    installation = install(app, client=lambda: StorageClient(storage_url, timeout=5.0, retries=2))
    yield app
    installation.uninstall()
    app.close()


def kinds(events: list[Any]) -> list[str]:
    return [event.type for event in events]


def test_eager_success(eager_app: Any, storage: StorageClient) -> None:
    eval_id = new_evaluation(storage, status="queued")
    result = eager_app.tasks["crucible_test.succeed"].delay(eval_id, "now")

    record, events = wait_for(storage, eval_id, finished_with("task_succeeded"), timeout=5)

    assert result.get() == {"value": "now"}
    assert record.status == "completed"
    assert record.celery_task_id == result.id
    assert json.loads(record.output) == {"value": "now"}
    assert kinds(events) == ["task_started", "task_succeeded"]
    assert events[0].metadata["eager"] is True


def test_eager_retries_then_success(eager_app: Any, storage: StorageClient) -> None:
    eval_id = new_evaluation(storage, status="queued")
    result = eager_app.tasks["crucible_test.flaky"].delay(eval_id, 1)

    record, events = wait_for(storage, eval_id, finished_with("task_succeeded"), timeout=5)

    assert result.get() == "ok after 1 retries"
    assert record.status == "completed"
    assert record.retries == 1
    assert kinds(events) == ["task_started", "task_retried", "task_started", "task_succeeded"]


def test_eager_failure_is_final(eager_app: Any, storage: StorageClient) -> None:
    eval_id = new_evaluation(storage, status="queued")
    result = eager_app.tasks["crucible_test.doomed"].apply(kwargs={"evaluation_id": eval_id})

    record, events = wait_for(storage, eval_id, finished_with("task_failed"), timeout=5)

    assert result.failed()
    assert record.status == "failed"
    assert record.final_failure is True
    assert record.retries == 2
    assert "ConnectionError: still down at attempt 2" in record.error
    assert kinds(events).count("task_retried") == 2


def test_unreachable_service_never_fails_the_task(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app("crucible-test-eager-unused", eager=True)
    dead = f"http://127.0.0.1:{free_port()}"
    installation = install(
        app, client=StorageClient(dead, timeout=0.5, retries=0), final_report_deadline=1.0
    )
    try:
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="crucible_storage.celery"):
            result = app.tasks["crucible_test.succeed"].delay("eval_unreachable", "fine")
        assert result.get() == {"value": "fine"}
        assert time.monotonic() - started < 10
        assert any("SUCCESS" in r.getMessage() for r in caplog.records)
    finally:
        installation.uninstall()
        app.close()


def test_install_twice_on_one_app_is_refused(storage_url: str) -> None:
    app = make_app("crucible-test-eager-unused", eager=True)
    installation = install(app, client=StorageClient(storage_url))
    try:
        with pytest.raises(ValueError, match="already installed"):
            install(app, client=StorageClient(storage_url))
    finally:
        installation.uninstall()
        app.close()


def test_default_evaluation_id() -> None:
    app = make_app("crucible-test-eager-unused", eager=True)
    succeed, doomed, unmapped = (
        app.tasks[f"crucible_test.{name}"] for name in ("succeed", "doomed", "unmapped")
    )

    def call(task: Any, *args: Any, **kwargs: Any) -> TaskCall:
        return TaskCall(name=task.name, id="t", args=args, kwargs=kwargs, task=task)

    assert default_evaluation_id(call(succeed, "eval_1", "x")) == "eval_1"
    assert default_evaluation_id(call(succeed, value="x", eval_id="eval_2")) == "eval_2"
    assert default_evaluation_id(call(doomed, evaluation_id="eval_3")) == "eval_3"
    assert default_evaluation_id(call(unmapped, "eval_4")) is None
    # A publisher that sends by name knows no signature: only the keyword counts.
    by_name = TaskCall(name="elsewhere.task", id="t", args=("eval_5",), kwargs={}, task=None)
    assert default_evaluation_id(by_name) is None
    app.close()


class RefuseFirst(httpx.BaseTransport):
    """Answers 503 to the first ``count`` Celery updates, then lets requests through."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.refused = 0
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/celery-update") and self.refused < self.count:
            self.refused += 1
            return httpx.Response(503, json={"title": "Service Unavailable", "status": 503})
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_final_report_outlasts_the_clients_retries(
    storage_url: str, storage: StorageClient
) -> None:
    transport = RefuseFirst(3)
    app = make_app("crucible-test-eager-unused", eager=True)
    client = StorageClient(storage_url, retries=0, transport=transport)
    installation = install(app, client=client, final_report_deadline=10.0)
    try:
        eval_id = new_evaluation(storage, status="running")
        app.tasks["crucible_test.fail"].delay(eval_id, "down for a while")
        record = storage.evaluations.get(eval_id)
    finally:
        installation.uninstall()
        client.close()
        app.close()

    # STARTED was refused once and given up (not final); FAILURE twice, then stored.
    assert transport.refused == 3
    assert record.status == "failed"
    assert record.final_failure is True
