"""The platform's writers of one evaluation, each call built as its code builds it.

The storage worker creates the record as ``submitted``; Celery's ``evaluate_code``
and ``monitor_job_status`` PUT statuses without looking at the current one; the
gateway cancels and overrides. Every one of them treats anything but 2xx as a
failure (a 409 becomes a failed evaluation), so none may get one.
"""

from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from litestar.testing import AsyncTestClient, TestClient

from interfaces.http.app import create_app
from interfaces.settings import Settings
from tests.integration.test_auth_matrix import API_KEYS, CALLERS
from tests.platform.worker_calls import submit

Client = TestClient[Any]


def put(client: Client, eval_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.put(f"/evaluations/{eval_id}", json=body)
    assert response.status_code == 200, (body, response.status_code, response.text)
    record: dict[str, Any] = response.json()
    return record


def get(client: Client, eval_id: str) -> dict[str, Any]:
    response = client.get(f"/evaluations/{eval_id}")
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


def test_a_celery_run_from_submission_to_success(client: Client) -> None:
    submit(client, "flow-1")
    assert get(client, "flow-1")["status"] == "submitted"
    # evaluate_code: provisioning while the record may still be submitted (a skipped step).
    assert put(client, "flow-1", {"status": "provisioning"})["status"] == "provisioning"
    put(
        client,
        "flow-1",
        {"status": "provisioning", "metadata": {"job_name": "job-abc", "namespace": "crucible"}},
    )
    # monitor_job_status, job running: the job name is the executor and the container.
    running = put(
        client,
        "flow-1",
        {"status": "running", "executor_id": "job-abc", "container_id": "job-abc", "timeout": 300},
    )
    assert (running["executor_id"], running["timeout"]) == ("job-abc", 300)
    assert running["started_at"] is not None
    done = put(client, "flow-1", {"status": "completed", "output": "hi\n", "exit_code": 0})
    assert (done["status"], done["output"], done["exit_code"]) == ("completed", "hi\n", 0)
    # The gateway's detail view reads these.
    record = get(client, "flow-1")
    assert record["exit_code"] == 0
    assert record["metadata"]["job_name"] == "job-abc"
    assert record["completed_at"] is not None and record["runtime_ms"] is not None


def test_a_late_report_from_another_writer_is_acknowledged(client: Client) -> None:
    submit(client, "flow-2")
    put(client, "flow-2", {"status": "running"})
    put(client, "flow-2", {"status": "completed", "output": "done", "exit_code": 0})
    # The storage worker's handler for a delayed ``evaluation:running`` event.
    late = client.put(
        "/evaluations/flow-2",
        json={"status": "running", "started_at": datetime.now(UTC).isoformat()},
    )
    assert late.status_code == 200
    assert late.headers["x-status-ignored"].endswith("completed")
    record = get(client, "flow-2")
    assert (record["status"], record["output"], record["exit_code"]) == ("completed", "done", 0)
    # A delayed ``queued`` report after the run started is late too.
    submit(client, "flow-3")
    put(client, "flow-3", {"status": "running"})
    assert put(client, "flow-3", {"status": "submitted"})["status"] == "running"


def test_a_final_celery_failure_ends_the_evaluation(client: Client) -> None:
    submit(client, "flow-4")
    put(client, "flow-4", {"status": "provisioning"})
    # A retried failure first: error and counters while the task retries.
    put(client, "flow-4", {"error": "boom", "retries": 1, "retry_message": "Retrying in 4s"})
    final = put(
        client,
        "flow-4",
        {
            "error": "boom",
            "retries": 5,
            "retry_message": None,
            "status": "failed",
            "final_failure": True,
        },
    )
    assert (final["status"], final["final_failure"], final["retries"]) == ("failed", True, 5)
    assert final["error"] == "boom"
    record = get(client, "flow-4")
    assert record["status"] == "failed" and record["completed_at"] is not None


def test_retry_message_is_kept(client: Client) -> None:
    submit(client, "flow-5")
    put(client, "flow-5", {"status": "queued"})
    body = {"error": "flaky", "retries": 2, "retry_message": "Retrying in 8s"}
    assert put(client, "flow-5", body)["retry_message"] == "Retrying in 8s"
    assert get(client, "flow-5")["retry_message"] == "Retrying in 8s"


def test_the_gateway_admin_override_is_applied_and_audited(client: Client) -> None:
    submit(client, "flow-6")
    put(client, "flow-6", {"status": "running"})
    put(client, "flow-6", {"status": "completed", "output": "ok"})
    body = {
        "status": "failed",
        "metadata": {
            "admin_update": True,
            "admin_updated_at": datetime.now(UTC).isoformat(),
            "admin_reason": "wrong result",
            "admin_update_type": "status_change",
        },
    }
    assert put(client, "flow-6", body)["status"] == "failed"
    assert get(client, "flow-6")["metadata"]["admin_reason"] == "wrong result"
    audit = client.get("/audit", params={"evaluation_id": "flow-6", "action": "admin_override"})
    assert audit.status_code == 200, audit.text
    assert [item["fields"] for item in audit.json()["items"]] == [["metadata", "status"]]


def test_an_admin_override_needs_an_admin_key(make_client: Any) -> None:
    secured = make_client(access={"api_keys": API_KEYS})
    writer, admin = CALLERS["write"], CALLERS["admin"]
    body = {"id": "flow-7", "code": "x", "status": "completed"}
    assert secured.post("/evaluations", json=body, headers=writer).status_code == 200
    override = {"status": "failed", "metadata": {"admin_update": True}}
    refused = secured.put("/evaluations/flow-7", json=override, headers=writer)
    assert refused.status_code == 403
    assert refused.json()["field"] == "metadata.admin_update"
    applied = secured.put("/evaluations/flow-7", json=override, headers=admin)
    assert (applied.status_code, applied.json()["status"]) == (200, "failed")


def test_cancel_of_a_running_evaluation(client: Client) -> None:
    submit(client, "flow-8")
    put(client, "flow-8", {"status": "running", "executor_id": "job-8", "container_id": "job-8"})
    # The gateway's cancel: it does not check the answer, but the record must end.
    put(client, "flow-8", {"status": "cancelled", "error": "Cancelled by user"})
    record = get(client, "flow-8")
    assert (record["status"], record["error"]) == ("cancelled", "Cancelled by user")


@pytest.mark.anyio
async def test_concurrent_plain_writers_never_get_a_409(backend_settings: Settings) -> None:
    """Ten writers, 200 PUTs without If-Match on one record: every one is applied."""
    writers, each = 10, 20
    async with AsyncTestClient(app=create_app(backend_settings)) as client:
        created = await client.post("/evaluations", json={"id": "busy-1", "code": "x"})
        assert created.status_code == 200, created.text
        statuses: list[int] = []

        async def writer(index: int) -> None:
            for step in range(each):
                body = {"metadata": {f"w{index}": step}, "retries": step}
                response = await client.put("/evaluations/busy-1", json=body)
                statuses.append(response.status_code)

        async with anyio.create_task_group() as group:
            for index in range(writers):
                group.start_soon(writer, index)
        record = (await client.get("/evaluations/busy-1")).json()

    assert sorted(set(statuses)) == [200], {s: statuses.count(s) for s in set(statuses)}
    assert len(statuses) == writers * each
    # Nothing overwrote another writer's keys: each writer's last step is there.
    assert record["metadata"] == {f"w{index}": each - 1 for index in range(writers)}
    assert record["version"] == 1 + writers * each


def test_a_celery_update_keeps_what_it_does_not_know(client: Client) -> None:
    submit(client, "flow-9")
    body = {"task_state": "STARTED", "celery_task_id": "t-9", "hostname": "worker-3"}
    response = client.post("/evaluations/flow-9/celery-update", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-unrecognized-fields"] == "hostname"
    record = get(client, "flow-9")
    assert record["status"] == "running"
    assert record["metadata"]["_unrecognized"] == {"hostname": "worker-3"}


def test_unrecognized_names_are_percent_encoded_in_the_header(client: Client) -> None:
    body = {"id": "flow-10", "code": "x", "größe": 1, "a\r\nSet-Cookie: x": 2}
    response = client.post("/evaluations", json=body)
    assert response.status_code == 200, response.text
    names = response.headers["x-unrecognized-fields"].split(", ")
    assert names == ["a%0D%0ASet-Cookie%3A%20x", "gr%C3%B6%C3%9Fe"]
    assert "set-cookie" not in response.headers
    assert response.json()["metadata"]["_unrecognized"] == {"größe": 1, "a\r\nSet-Cookie: x": 2}
