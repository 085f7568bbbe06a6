"""Evaluation records over HTTP, on every configuration."""

import re
from typing import Any

import pytest
from litestar.testing import TestClient

Client = TestClient[Any]
PROBLEM = "application/problem+json"


def create(client: Client, **body: Any) -> dict[str, Any]:
    body.setdefault("code", "print('hi')")
    response = client.post("/evaluations", json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"]
    if field is not None:
        fields = {e["field"] for e in problem.get("errors", [])} | {problem.get("field")}
        assert any(field in str(f) for f in fields), problem
    return problem  # type: ignore[no-any-return]


def test_create_as_in_the_spec(client: Client) -> None:
    response = client.post(
        "/evaluations",
        json={
            "id": "eval_20240701_120000_abc123",
            "code": 'for i in range(10):\n    print(f"Count: {i}")',
            "language": "python",
            "status": "queued",
            "metadata": {"submitted_by": "api", "priority": "normal"},
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "eval_20240701_120000_abc123"
    assert body["status"] == "queued"
    assert body["metadata"] == {"submitted_by": "api", "priority": "normal"}
    assert body["version"] == 1
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == "/evaluations/eval_20240701_120000_abc123"
    fetched = client.get("/evaluations/eval_20240701_120000_abc123").json()
    assert fetched == body


def test_defaults_and_generated_id(client: Client) -> None:
    body = create(client)
    assert re.fullmatch(r"eval_\d{8}_\d{6}_[0-9a-f]{6}", body["id"])
    assert body["language"] == "python"
    assert body["status"] == "queued"
    assert body["metadata"] == {}


def test_duplicate_id_is_409(client: Client) -> None:
    create(client, id="dup-1")
    assert_problem(client.post("/evaluations", json={"id": "dup-1", "code": "x"}), 409, "id")


@pytest.mark.parametrize("bad", ["../../x", ".hidden", "a b", "x" * 256, "a/b", "a..b", ""])
def test_invalid_id_in_body_is_422(client: Client, bad: str) -> None:
    assert_problem(client.post("/evaluations", json={"id": bad, "code": "x"}), 422, "id")


@pytest.mark.parametrize("bad", [".hidden", "a%20b", "x" * 256, "a..b"])
def test_invalid_id_in_path_is_422(client: Client, bad: str) -> None:
    assert_problem(client.get(f"/evaluations/{bad}"), 422, "id")
    assert_problem(client.put(f"/evaluations/{bad}", json={"status": "running"}), 422, "id")


def test_slash_in_path_id_never_routes(client: Client) -> None:
    response = client.get("/evaluations/..%2F..%2Fx")
    assert response.status_code in (404, 422)


def test_body_errors_name_the_field(client: Client) -> None:
    assert_problem(client.post("/evaluations", json={"language": "python"}), 422, "code")
    assert_problem(client.post("/evaluations", json={"code": "x", "status": "done"}), 422, "status")
    assert_problem(client.post("/evaluations", json={"code": "x\u0000"}), 422, "code")


def test_malformed_json_is_a_client_error(client: Client) -> None:
    response = client.post(
        "/evaluations", content=b'{"code": ', headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith(PROBLEM)


def test_unknown_is_404(client: Client) -> None:
    assert_problem(client.get("/evaluations/nope"), 404)
    assert_problem(client.put("/evaluations/nope", json={"status": "running"}), 404)
    assert_problem(client.delete("/evaluations/nope"), 404)


def test_update_as_in_the_spec(client: Client) -> None:
    create(client, id="upd-1", metadata={"a": 1, "b": 1})
    client.put("/evaluations/upd-1", json={"status": "running"})
    response = client.put(
        "/evaluations/upd-1",
        json={
            "status": "completed",
            "output": "Count: 0\nCount: 1\n...",
            "runtime_ms": 150,
            "metadata": {"b": 2, "c": 3},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert body["output"] == "Count: 0\nCount: 1\n..."
    assert body["runtime_ms"] == 150
    assert body["metadata"] == {"a": 1, "b": 2, "c": 3}
    assert body["started_at"] is not None and body["completed_at"] is not None
    assert body["version"] == 3
    assert response.headers["etag"] == '"3"'


def test_timestamps_follow_the_state(client: Client) -> None:
    create(client, id="ts-1")
    running = client.put("/evaluations/ts-1", json={"status": "running"}).json()
    assert running["started_at"] is not None and running["completed_at"] is None
    done = client.put("/evaluations/ts-1", json={"status": "failed", "error": "boom"}).json()
    assert done["completed_at"] is not None
    assert done["runtime_ms"] is not None and done["runtime_ms"] >= 0
    assert done["error"] == "boom"


def test_a_late_status_is_acknowledged_and_changes_nothing(client: Client) -> None:
    create(client, id="ill-1", status="completed")
    late = client.put("/evaluations/ill-1", json={"status": "running", "output": "x" * 200_000})
    assert late.status_code == 200, late.text
    assert late.json()["status"] == "completed"
    assert "completed" in late.headers["x-status-ignored"]
    body = client.get("/evaluations/ill-1?include_storage_info=true").json()
    assert (body["status"], body["output"], body["version"]) == ("completed", None, 1)


def test_unrecognized_fields_are_kept_and_named(client: Client) -> None:
    created = client.post("/evaluations", json={"id": "unk-1", "code": "x", "stauts": "queued"})
    assert created.status_code == 200, created.text
    assert created.headers["x-unrecognized-fields"] == "stauts"
    assert created.json()["metadata"] == {"_unrecognized": {"stauts": "queued"}}
    updated = client.put("/evaluations/unk-1", json={"colour": ["red"], "metadata": {"k": 1}})
    assert updated.headers["x-unrecognized-fields"] == "colour"
    assert updated.json()["metadata"] == {
        "k": 1,
        "_unrecognized": {"stauts": "queued", "colour": ["red"]},
    }
    plain = client.put("/evaluations/unk-1", json={"runtime_ms": 3})
    assert "x-unrecognized-fields" not in plain.headers


def test_if_match(client: Client) -> None:
    create(client, id="im-1")
    assert_problem(
        client.put("/evaluations/im-1", json={"runtime_ms": 1}, headers={"If-Match": '"7"'}), 412
    )
    ok = client.put("/evaluations/im-1", json={"runtime_ms": 1}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200
    assert ok.headers["etag"] == '"2"'
    stale = client.put("/evaluations/im-1", json={"runtime_ms": 2}, headers={"If-Match": '"1"'})
    problem = assert_problem(stale, 412)
    assert problem["current_version"] == 2
    assert client.get("/evaluations/im-1").json()["runtime_ms"] == 1


def test_soft_delete(client: Client) -> None:
    create(client, id="del-1", status="running")
    deleted = client.delete("/evaluations/del-1")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"message": "Evaluation deleted successfully", "id": "del-1"}
    assert_problem(client.get("/evaluations/del-1"), 404)
    assert_problem(client.delete("/evaluations/del-1"), 404)
    ids = [item["id"] for item in client.get("/evaluations").json()["evaluations"]]
    assert "del-1" not in ids
    running = client.get("/evaluations/running").json()
    assert "del-1" not in [r["eval_id"] for r in running["running_evaluations"]]
    assert client.get("/statistics").json()["total_evaluations"] == 0
    assert_problem(client.post("/evaluations", json={"id": "del-1", "code": "x"}), 409)


def test_storage_info(client: Client) -> None:
    create(client, id="si-1")
    client.put("/evaluations/si-1", json={"output": "héllo"})
    body = client.get("/evaluations/si-1?include_storage_info=true").json()
    assert body["_storage_info"] == {
        "output_location": "inline",
        "output_size": 6,
        "output_truncated": False,
        "output_compressed": False,
        "error_location": None,
        "error_size": None,
        "error_truncated": False,
    }
    assert "_storage_info" not in client.get("/evaluations/si-1").json()


def test_get_reflects_every_write(client: Client) -> None:
    """Read-through cache: a write is visible to the very next read."""
    create(client, id="rw-1")
    for n in range(5):
        client.get("/evaluations/rw-1")
        client.put("/evaluations/rw-1", json={"runtime_ms": n, "metadata": {"n": n}})
        body = client.get("/evaluations/rw-1").json()
        assert (body["runtime_ms"], body["metadata"]["n"], body["version"]) == (n, n, n + 2)
