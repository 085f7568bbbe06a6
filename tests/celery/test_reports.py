"""What the reports do on the service's less common answers: a 202 during a database
outage, and a second delivery of one attempt that finishes again (``acks_late``).
"""

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from celery import signals  # type: ignore[import-untyped]
from crucible_storage import StorageClient
from crucible_storage.celery import install

from tests.celery.conftest import new_evaluation
from tests.celery.tasks import make_app


def run_eagerly(
    task: str, args: tuple[str, str], answer: Callable[[httpx.Request], httpx.Response]
) -> None:
    """Run ``task`` in an eager app whose storage client gets its answers from ``answer``."""
    app = make_app("crucible-test-eager-unused", eager=True)
    client = StorageClient("http://storage.test", retries=0, transport=httpx.MockTransport(answer))
    installation = install(app, client=client, final_report_deadline=1.0)
    try:
        app.tasks[task].delay(*args)
    finally:
        installation.uninstall()
        client.close()
        app.close()


def test_a_journaled_failure_still_gets_final_failure() -> None:
    """A 202 means the FAILURE is durable in the failover journal: the flag must follow."""
    sent: list[tuple[str, str, dict[str, Any]]] = []

    def journal(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        sent.append((request.method, request.url.path, body))
        accepted = {"evaluation_id": "eval_journaled", "journal_entry": "j1", "detail": "later"}
        return httpx.Response(202, json=accepted)

    run_eagerly("crucible_test.fail", ("eval_journaled", "while the database is down"), journal)

    states = [body.get("task_state") for _, path, body in sent if path.endswith("/celery-update")]
    assert states == ["STARTED", "FAILURE"]
    flags = [body for method, _, body in sent if "final_failure" in body]
    assert flags == [{"final_failure": True}], sent


class Recording(httpx.BaseTransport):
    """The real service, with the status of every answer kept."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.statuses: list[tuple[str, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.statuses.append((request.url.path, response.status_code))
        return response

    def close(self) -> None:
        self.inner.close()


def finish(task: Any, task_id: str, eval_id: str, state: str, delivery: tuple[str, bool]) -> None:
    """What a worker's pool child signals when one delivery of the task ends."""
    hostname, redelivered = delivery
    task.push_request(
        id=task_id,
        args=(eval_id, "x"),
        kwargs={},
        retries=0,
        hostname=hostname,
        delivery_info={"redelivered": redelivered},
    )
    try:
        if state == "SUCCESS":
            signals.task_success.send(sender=task, result=f"done by {hostname}")
        else:
            signals.task_failure.send(
                sender=task,
                task_id=task_id,
                exception=ValueError(f"failed on {hostname}"),
                args=(eval_id, "x"),
                kwargs={},
                traceback=None,
                einfo=None,
            )
    finally:
        task.pop_request()


@pytest.mark.parametrize("state", ["SUCCESS", "FAILURE"])
def test_two_deliveries_that_both_finish_report_under_keys_of_their_own(
    state: str, storage_url: str, storage: StorageClient, caplog: pytest.LogCaptureFixture
) -> None:
    transport = Recording()
    app = make_app("crucible-test-eager-unused", eager=True)
    client = StorageClient(storage_url, retries=0, transport=transport)
    installation = install(app, client=client, final_report_deadline=5.0)
    task, task_id = app.tasks["crucible_test.succeed"], str(uuid.uuid4())
    eval_id = new_evaluation(storage, status="running")
    try:
        with caplog.at_level(logging.WARNING, logger="crucible_storage.celery"):
            for delivery in (("one@crucible-test", False), ("two@crucible-test", True)):
                finish(task, task_id, eval_id, state, delivery)
    finally:
        installation.uninstall()
        client.close()
        app.close()

    assert [status for _, status in transport.statuses if status >= 400] == []
    assert not [r.getMessage() for r in caplog.records if "not stored" in r.getMessage()]
    record = storage.evaluations.get(eval_id)
    stored = record.output if state == "SUCCESS" else record.error
    assert stored is not None and "@crucible-test" in stored and "not stored" not in stored
    ends = [e for e in storage.events.list(eval_id) if e.type.startswith("task_")]
    assert [e.metadata.get("hostname") for e in ends] == ["one@crucible-test", "two@crucible-test"]


def test_a_reused_key_is_no_refused_payload() -> None:
    """A 422 naming ``Idempotency-Key``: sending the state again with a note cannot help."""
    sent: list[dict[str, Any]] = []

    def reused(request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/celery-update"):
            return httpx.Response(404, json={"title": "Not Found", "status": 404})
        sent.append(json.loads(request.content))
        problem = {
            "title": "Unprocessable Entity",
            "status": 422,
            "errors": [{"field": "Idempotency-Key", "message": "reused with another body"}],
        }
        return httpx.Response(422, json=problem)

    run_eagerly("crucible_test.succeed", ("eval_reused", "value"), reused)

    assert [body["task_state"] for body in sent] == ["STARTED", "SUCCESS"]
    assert not any("not stored" in body.get("output", "") for body in sent)
