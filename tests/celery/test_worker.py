"""Tasks run by a real prefork worker on RabbitMQ, checked in the service's record and events.

The publishing side (this process) reports the send; the worker's main process the
receipt and a revoke; its pool children the start, retries and the end.
"""

import json
import os
import signal
from typing import Any

import pytest
from crucible_storage import StorageClient

from tests.celery.conftest import (
    CeleryRun,
    finished_with,
    new_evaluation,
    ready,
    spawn_worker,
    unique_queue,
    wait_for,
)

pytestmark = pytest.mark.e2e


def kinds(events: list[Any]) -> list[str]:
    return [event.type for event in events]


def test_success_reports_queued_running_completed(
    celery_run: CeleryRun, storage: StorageClient
) -> None:
    eval_id = new_evaluation(storage)
    sent = celery_run.app.tasks["crucible_test.succeed"].apply_async(
        kwargs={"eval_id": eval_id, "value": "42"}
    )

    record, events = wait_for(storage, eval_id, finished_with("task_succeeded"))

    assert record.status == "completed"
    assert record.celery_task_id == sent.id
    assert record.retries == 0
    assert json.loads(record.output) == {"value": "42"}
    assert record.executor_id == celery_run.worker.hostname
    assert record.started_at is not None and record.completed_at is not None
    assert kinds(events) == ["task_sent", "task_received", "task_started", "task_succeeded"]
    assert {e.metadata["celery_task_id"] for e in events} == {sent.id}
    started = events[2].metadata
    assert started["hostname"] == celery_run.worker.hostname
    assert started["attempt"] == 0
    # Reported from a pool child, whose client worker_process_init made.
    assert started["pid"] != celery_run.worker.process.pid


def test_positional_evaluation_id(celery_run: CeleryRun, storage: StorageClient) -> None:
    eval_id = new_evaluation(storage)
    celery_run.app.tasks["crucible_test.succeed"].delay(eval_id, "positional")

    record, _ = wait_for(storage, eval_id, finished_with("task_succeeded"))

    assert json.loads(record.output) == {"value": "positional"}


def test_failure_reports_failed_with_traceback(
    celery_run: CeleryRun, storage: StorageClient
) -> None:
    eval_id = new_evaluation(storage)
    sent = celery_run.app.tasks["crucible_test.fail"].delay(eval_id, "boom")

    record, events = wait_for(storage, eval_id, finished_with("task_failed"))

    assert record.status == "failed"
    assert record.final_failure is True
    assert record.celery_task_id == sent.id
    assert "Traceback" in record.error and "ValueError: boom" in record.error
    assert kinds(events) == ["task_sent", "task_received", "task_started", "task_failed"]
    assert events[-1].metadata["exception"] == "ValueError"


def test_retry_then_success_counts_the_retries(
    celery_run: CeleryRun, storage: StorageClient
) -> None:
    eval_id = new_evaluation(storage)
    sent = celery_run.app.tasks["crucible_test.flaky"].delay(eval_id, 2)

    record, events = wait_for(storage, eval_id, finished_with("task_succeeded"))

    assert record.status == "completed"
    assert record.celery_task_id == sent.id
    assert record.retries == 2
    assert record.output == "ok after 2 retries"
    assert record.retry_message is not None and "transient 1" in record.retry_message
    attempt = ["task_received", "task_started"]
    assert kinds(events) == [
        "task_sent", *attempt, "task_retried", *attempt, "task_retried", *attempt, "task_succeeded"
    ]  # fmt: skip
    retried = [e for e in events if e.type == "task_retried"]
    assert [e.metadata["attempt"] for e in retried] == [0, 1]
    assert "transient 0" in retried[0].metadata["reason"]
    started = [e.metadata["attempt"] for e in events if e.type == "task_started"]
    assert started == [0, 1, 2]
    assert {e.metadata["celery_task_id"] for e in events} == {sent.id}


def test_failure_after_the_last_retry_is_final(
    celery_run: CeleryRun, storage: StorageClient
) -> None:
    eval_id = new_evaluation(storage)
    celery_run.app.tasks["crucible_test.doomed"].apply_async(kwargs={"evaluation_id": eval_id})

    record, events = wait_for(storage, eval_id, finished_with("task_failed"))

    assert record.status == "failed"
    assert record.final_failure is True
    assert record.retries == 2
    assert "ConnectionError: still down at attempt 2" in record.error
    attempt = ["task_received", "task_started"]
    assert kinds(events) == [
        "task_sent", *attempt, "task_retried", *attempt, "task_retried", *attempt, "task_failed"
    ]  # fmt: skip
    assert events[-1].metadata["attempt"] == 2


def test_revoked_before_it_starts(celery_run: CeleryRun, storage: StorageClient) -> None:
    eval_id = new_evaluation(storage)
    sent = celery_run.app.tasks["crucible_test.succeed"].apply_async(
        kwargs={"eval_id": eval_id, "value": "never"}, countdown=2
    )
    celery_run.app.control.revoke(sent.id)

    record, events = wait_for(storage, eval_id, finished_with("task_revoked"))

    assert record.status == "cancelled"
    assert record.celery_task_id == sent.id
    assert record.output is None
    assert "task_started" not in kinds(events)
    assert events[-1].metadata["terminated"] is False


def test_revoked_while_running_with_terminate(
    celery_run: CeleryRun, storage: StorageClient
) -> None:
    eval_id = new_evaluation(storage)
    sent = celery_run.app.tasks["crucible_test.nap"].delay(eval_id, 60)
    wait_for(storage, eval_id, lambda _, events: "task_started" in kinds(events))

    celery_run.app.control.revoke(sent.id, terminate=True)
    record, events = wait_for(storage, eval_id, finished_with("task_revoked"))

    assert record.status == "cancelled"
    assert kinds(events) == ["task_sent", "task_received", "task_started", "task_revoked"]
    assert events[-1].metadata["terminated"] is True
    # Reported by the worker's main process: the child it killed reports nothing.
    assert "pid" not in events[-1].metadata


def test_unmapped_task_is_ignored(celery_run: CeleryRun, storage: StorageClient) -> None:
    result = celery_run.app.tasks["crucible_test.unmapped"].delay("not an evaluation")
    eval_id = new_evaluation(storage)
    celery_run.app.tasks["crucible_test.succeed"].delay(eval_id, "after")
    wait_for(storage, eval_id, finished_with("task_succeeded"))
    assert result.id
    # Mapped, it would have been reported to an evaluation "not an evaluation" (a 404, logged).
    assert "does not exist" not in celery_run.worker.text()


@pytest.mark.slow
def test_acks_late_redelivery_runs_again_on_another_worker(
    celery_run: CeleryRun, storage: StorageClient
) -> None:
    queue = unique_queue("redelivery")
    celery_run.extra_queues.append(queue)
    workers = [
        spawn_worker(queue, celery_run.storage_url, celery_run.log_dir, label=label, concurrency=1)
        for label in ("one", "two")
    ]
    try:
        ready(*workers)
        eval_id = new_evaluation(storage)
        sent = celery_run.app.tasks["crucible_test.redeliverable"].apply_async(
            args=(eval_id, 60), queue=queue
        )
        # Killed once its start is fully reported (a worker killed sooner reports nothing more).
        _, events = wait_for(storage, eval_id, lambda _, events: "task_started" in kinds(events))
        first, second = sorted(workers, key=lambda w: w.name != events[-1].metadata["hostname"])
        first.kill()
        record, events = wait_for(storage, eval_id, finished_with("task_succeeded"))
    finally:
        for worker in workers:
            worker.stop()

    assert record.status == "completed"
    assert record.celery_task_id == sent.id
    assert record.output == "second delivery"
    assert record.executor_id == second.hostname
    assert record.retries == 0
    assert kinds(events) == [
        "task_sent", "task_received", "task_started", "task_received", "task_started", "task_succeeded"
    ]  # fmt: skip
    hosts = [e.metadata.get("hostname") for e in events if e.type == "task_started"]
    assert hosts == [first.hostname, second.hostname]
    assert [e.metadata.get("redelivered", False) for e in events[1:5]] == [False, False, True, True]
    assert {e.metadata["celery_task_id"] for e in events} == {sent.id}


def test_pool_child_killed_mid_task_fails_for_good(
    celery_run: CeleryRun, storage: StorageClient
) -> None:
    eval_id = new_evaluation(storage)
    celery_run.app.tasks["crucible_test.nap"].delay(eval_id, 60)
    _, events = wait_for(storage, eval_id, lambda _, events: "task_started" in kinds(events))

    # The child dies without a word; the worker's main process reports the loss.
    os.kill(events[-1].metadata["pid"], signal.SIGKILL)
    record, events = wait_for(storage, eval_id, finished_with("task_failed"))

    assert record.status == "failed"
    assert record.final_failure is True
    assert "WorkerLostError" in record.error
    assert kinds(events) == ["task_sent", "task_received", "task_started", "task_failed"]
    assert events[-1].metadata["exception"] == "WorkerLostError"
