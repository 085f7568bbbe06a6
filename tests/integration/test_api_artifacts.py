"""Outputs by size, running set, logs, events, Celery updates and the complete view."""

from pathlib import Path
from typing import Any

import pytest
import zstandard
from litestar.testing import TestClient

from interfaces.settings import Settings

Client = TestClient[Any]


def new(client: Client, eval_id: str, **body: Any) -> None:
    response = client.post("/evaluations", json={"id": eval_id, "code": "x", **body})
    assert response.status_code == 200, response.text


def info(client: Client, eval_id: str) -> dict[str, Any]:
    body = client.get(f"/evaluations/{eval_id}?include_storage_info=true").json()
    return body  # type: ignore[no-any-return]


def test_threshold_routing_and_round_trip(client: Client, backend_settings: Settings) -> None:
    root = Path(backend_settings.storage.file_storage_path)
    new(client, "big-1")
    client.put("/evaluations/big-1", json={"output": "a" * 102_400})
    body = info(client, "big-1")
    assert body["_storage_info"]["output_location"] == "inline"
    assert body["output"] == "a" * 102_400
    assert not list((root / "evaluations").glob("big-1/output.*"))  # (file: its record's copy)

    text = "line ✓ " * 20_000  # multi-byte, > 100 KB
    client.put("/evaluations/big-1", json={"output": text})
    body = info(client, "big-1")
    storage = body["_storage_info"]
    assert storage["output_location"] == "file"
    assert storage["output_size"] == len(text.encode())
    assert storage["output_truncated"] is True
    assert storage["output_compressed"] is True
    assert body["output"] == text[:1000]
    assert body["output_truncated"] is True
    [on_disk] = (root / "evaluations" / "big-1").glob("output.*.txt.zst")
    assert (
        zstandard.ZstdDecompressor().decompress(on_disk.read_bytes(), max_output_size=10**8)
        == text.encode()
    )
    assert on_disk.stat().st_size < len(text.encode())
    assert (root / "evaluations" / "big-1" / "metadata.json").exists()

    full = client.get("/evaluations/big-1/output", headers={"Accept-Encoding": "identity"})
    assert full.status_code == 200
    assert full.content == text.encode()
    assert full.headers["content-length"] == str(len(text.encode()))
    # A client that accepts zstd gets the stored frame as is (httpx decodes it).
    passed = client.get("/evaluations/big-1/output", headers={"Accept-Encoding": "zstd"})
    assert passed.headers["content-encoding"] == "zstd"
    assert passed.headers["content-length"] == str(on_disk.stat().st_size)
    assert passed.content == text.encode()
    assert client.get("/evaluations/big-1/complete").json()["evaluation"]["output"] == text

    client.put("/evaluations/big-1", json={"output": "small now"})
    assert not on_disk.exists()
    left = {path.name for path in (root / "evaluations").glob("big-1/*")}
    # Nothing but the record's own copy when every record is mirrored (the file backend).
    assert left == ({"metadata.json"} if backend_settings.storage.file_mirror else set())
    assert client.get("/evaluations/big-1/output").text == "small now"


def test_one_byte_over_goes_to_a_file(client: Client) -> None:
    new(client, "edge-1")
    client.put("/evaluations/edge-1", json={"error": "b" * 102_401})
    storage = info(client, "edge-1")["_storage_info"]
    assert (storage["error_location"], storage["error_size"], storage["error_truncated"]) == (
        "file",
        102_401,
        True,
    )
    assert client.get("/evaluations/edge-1/error").content == b"b" * 102_401


def test_thresholds_from_settings(make_client: Any, backend_settings: Settings) -> None:
    client = make_client(
        storage={"large_file_threshold": 10, "compression_threshold": 5, "preview_size": 4}
    )
    new(client, "tiny-1")
    client.put("/evaluations/tiny-1", json={"output": "0123456789A"})
    body = info(client, "tiny-1")
    assert body["_storage_info"]["output_location"] == "file"
    assert body["output"] == "0123"
    assert client.get("/evaluations/tiny-1/output").text == "0123456789A"


def test_running_set_follows_status(client: Client) -> None:
    new(client, "run-1")
    assert client.get("/evaluations/run-1/running").status_code == 404
    client.put("/evaluations/run-1", json={"status": "provisioning", "executor_id": "ex-1"})
    client.put("/evaluations/run-1", json={"status": "running", "container_id": "c-9"})
    running = client.get("/evaluations/running").json()
    assert running["count"] == 1
    entry = running["running_evaluations"][0]
    assert (
        entry["eval_id"],
        entry["executor_id"],
        entry["container_id"],
        entry["status"],
    ) == ("run-1", "ex-1", "c-9", "running")
    one = client.get("/evaluations/run-1/running").json()
    assert one["container_id"] == "c-9" and one["started_at"] is not None
    assert one == entry
    client.put("/evaluations/run-1", json={"status": "completed"})
    assert client.get("/evaluations/running").json() == {"running_evaluations": [], "count": 0}
    assert client.get("/evaluations/run-1/running").status_code == 404


def test_logs_append_and_tail(client: Client) -> None:
    new(client, "log-1")
    first = client.post("/evaluations/log-1/logs", json={"content": "héllo\n"})
    assert first.status_code == 200
    assert first.json() == {
        "status": "success",
        "eval_id": "log-1",
        "offset": 0,
        "size": 7,
        "next_offset": 7,
    }
    client.post("/evaluations/log-1/logs", json={"content": "world\n"})
    whole = client.get("/evaluations/log-1/logs").json()
    assert whole["content"] == "héllo\nworld\n"
    assert whole["next_offset"] == 13
    tail = client.get("/evaluations/log-1/logs", params={"offset": 7}).json()
    assert (tail["content"], tail["offset"], tail["next_offset"]) == ("world\n", 7, 13)
    assert client.get("/evaluations/log-1/logs", params={"offset": 13}).json()["content"] == ""
    assert client.get("/evaluations/log-1/logs", params={"offset": 2}).status_code == 422
    assert client.post("/evaluations/nope/logs", json={"content": "x"}).status_code == 404
    assert client.get("/evaluations/nope/logs").status_code == 404


def test_events_timeline(client: Client) -> None:
    new(client, "ev-1")
    late = client.post(
        "/evaluations/ev-1/events",
        json={"type": "completed", "timestamp": "2024-07-01T12:00:05Z"},
    )
    assert late.status_code == 200, late.text
    assert late.json() == {
        "type": "completed",
        "timestamp": "2024-07-01T12:00:05Z",
        "message": None,
        "metadata": {},
        "event_id": late.json()["event_id"],
        "evaluation_id": "ev-1",
    }
    client.post(
        "/evaluations/ev-1/events",
        json={
            "event_type": "started",  # the earlier name of `type`, still accepted
            "message": "go",
            "metadata": {"node": "n1"},
            "timestamp": "2024-07-01T12:00:01Z",
        },
    )
    events = client.get("/evaluations/ev-1/events").json()
    assert [e["type"] for e in events] == ["started", "completed"]
    assert "event_type" not in events[0]
    assert events[0]["metadata"] == {"node": "n1"} and events[0]["message"] == "go"
    assert events[1]["event_id"] == late.json()["event_id"]
    again = client.post("/evaluations/ev-1/events", json={"type": "x", "event_id": "once"})
    client.post("/evaluations/ev-1/events", json={"type": "x", "event_id": "once"})
    assert again.status_code == 200
    assert len(client.get("/evaluations/ev-1/events").json()) == 3
    assert client.post("/evaluations/nope/events", json={"type": "x"}).status_code == 404
    assert client.get("/evaluations/nope/events").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"message": "no type"},
        {"type": "a", "event_type": "b"},
        {"type": "", "message": "empty"},
        {"type": None},
    ],
    ids=["missing", "both-differ", "empty", "null"],
)
def test_an_event_without_one_clear_type_is_422_naming_type(
    client: Client, body: dict[str, Any]
) -> None:
    new(client, "ev-2")
    response = client.post("/evaluations/ev-2/events", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "type" in {e["field"] for e in response.json()["errors"]}, response.text
    assert client.get("/evaluations/ev-2/events").json() == []


def test_an_event_with_both_names_agreeing_is_one_event(client: Client) -> None:
    new(client, "ev-3")
    both = client.post("/evaluations/ev-3/events", json={"type": "a", "event_type": "a"})
    assert both.status_code == 200, both.text
    assert both.json()["type"] == "a"


def test_celery_update(client: Client) -> None:
    new(client, "cel-1")
    ok = client.post(
        "/evaluations/cel-1/celery-update",
        json={"celery_task_id": "celery-task-456", "task_state": "STARTED"},
    )
    assert ok.status_code == 200
    assert ok.json()["applied"] is True
    assert ok.json()["evaluation"]["status"] == "running"
    done = client.post(
        "/evaluations/cel-1/celery-update",
        json={
            "celery_task_id": "celery-task-456",
            "task_state": "SUCCESS",
            "retries": 0,
            "output": "Task completed successfully",
        },
    ).json()
    assert done["applied"] is True
    assert done["evaluation"]["status"] == "completed"
    assert done["evaluation"]["output"] == "Task completed successfully"
    assert done["evaluation"]["celery_task_id"] == "celery-task-456"
    late = client.post("/evaluations/cel-1/celery-update", json={"task_state": "STARTED"})
    assert late.status_code == 200
    assert late.json()["applied"] is False
    assert late.json()["evaluation"]["status"] == "completed"
    dup = client.post("/evaluations/cel-1/celery-update", json={"task_state": "SUCCESS"})
    assert dup.json()["applied"] is False
    assert (
        client.post("/evaluations/cel-1/celery-update", json={"task_state": "EXPLODED"}).status_code
        == 422
    )
    assert (
        client.post("/evaluations/nope/celery-update", json={"task_state": "SUCCESS"}).status_code
        == 404
    )


def test_celery_retry_records_retries(client: Client) -> None:
    new(client, "cel-2")
    client.post("/evaluations/cel-2/celery-update", json={"task_state": "STARTED"})
    retry = client.post("/evaluations/cel-2/celery-update", json={"task_state": "RETRY"}).json()
    assert retry["evaluation"]["status"] == "queued"
    assert retry["evaluation"]["retries"] == 1
    failed = client.post(
        "/evaluations/cel-2/celery-update", json={"task_state": "FAILURE", "error": "Traceback"}
    ).json()
    assert failed["evaluation"]["status"] == "failed"
    assert failed["evaluation"]["error"] == "Traceback"


def test_complete_has_every_artifact(client: Client, backend_settings: Settings) -> None:
    new(client, "all-1")
    client.put("/evaluations/all-1", json={"output": "o" * 150_000, "error": "e"})
    client.post("/evaluations/all-1/logs", json={"content": "log line\n"})
    client.post("/evaluations/all-1/events", json={"event_type": "queued"})
    body = client.get("/evaluations/all-1/complete").json()
    record = body["evaluation"]
    assert record["id"] == "all-1"
    assert record["output"] == "o" * 150_000
    assert record["output_truncated"] is False
    assert record["_storage_info"]["output_location"] == "file"
    assert record["error"] == "e"
    assert body["logs"] == "log line\n"
    assert [e["type"] for e in body["events"]] == ["queued"]
    assert body["metadata"] == {
        "total_events": 1,
        "execution_time_ms": None,
        "output_size": 150_000,
        "error_size": 1,
    }
    assert body["storage_locations"]["output"].startswith("file://")
    assert body["storage_locations"]["error"] == backend_settings.storage.backend.value
    assert [entry["event"] for entry in body["timeline"]] == ["created", "queued"]


def test_missing_payload_is_204(client: Client) -> None:
    new(client, "none-1")
    assert client.get("/evaluations/none-1/output").status_code == 204


def test_timestamps_without_offset_are_taken_as_utc(client: Client) -> None:
    new(client, "naive-1")
    started = client.put(
        "/evaluations/naive-1", json={"status": "running", "started_at": "2024-07-01T12:00:00"}
    )
    assert started.status_code == 200, started.text
    assert started.json()["started_at"].startswith("2024-07-01T12:00:00")
    done = client.put(
        "/evaluations/naive-1",
        json={"status": "completed", "completed_at": "2024-07-01T14:00:00+02:00"},
    )
    assert done.status_code == 200, done.text
    assert done.json()["runtime_ms"] == 0  # 14:00+02:00 is 12:00 UTC

    for body in (
        {"event_type": "late", "timestamp": "2024-07-01T12:00:05"},
        {"event_type": "early", "timestamp": "2024-07-01T11:59:59Z"},
    ):
        assert client.post("/evaluations/naive-1/events", json=body).status_code == 200
    timeline = client.get("/evaluations/naive-1/events").json()
    assert [event["type"] for event in timeline] == ["early", "late"]

    listed = client.get("/evaluations", params={"created_after": "2000-01-01T00:00:00"})
    assert listed.status_code == 200, listed.text
    assert "naive-1" in [item["id"] for item in listed.json()["evaluations"]]


def test_nul_characters_anywhere_are_refused_with_the_field_named(client: Client) -> None:
    cases = [
        ("post", "/evaluations", {"id": "nul-2", "code": "x", "language": "py\u0000"}, "language"),
        (
            "post",
            "/evaluations",
            {"id": "nul-3", "code": "x", "metadata": {"k": ["a\u0000"]}},
            "metadata.k[0]",
        ),
        (
            "post",
            "/evaluations",
            {"id": "nul-4", "code": "x", "metadata": {"k\u0000": 1}},
            "metadata",
        ),
        ("put", "/evaluations/nul-1", {"metadata": {"deep": {"x": "\u0000"}}}, "metadata.deep.x"),
        ("put", "/evaluations/nul-1", {"executor_id": "e\u0000"}, "executor_id"),
        (
            "post",
            "/evaluations/nul-1/events",
            {"event_type": "a", "metadata": {"m": "\u0000"}},
            "metadata.m",
        ),
    ]
    new(client, "nul-1")
    for method, path, body, field in cases:
        response = getattr(client, method)(path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in response.text, response.text
    assert client.get("/evaluations/nul-2").status_code == 404
    record = client.get("/evaluations/nul-1").json()
    assert record["metadata"] == {}
    assert record["executor_id"] is None
    assert client.get("/evaluations/nul-1/events").json() == []


def test_if_range_and_the_etag_of_each_encoding(client: Client) -> None:
    new(client, "ifr-1")
    text = "".join(f"line {i}\n" for i in range(30_000))  # a compressed file blob
    assert client.put("/evaluations/ifr-1", json={"output": text}).is_success
    plain = client.get("/evaluations/ifr-1/output", headers={"Accept-Encoding": "identity"})
    zstd = client.get("/evaluations/ifr-1/output", headers={"Accept-Encoding": "zstd"})
    assert plain.headers["etag"] != zstd.headers["etag"]
    current = plain.headers["etag"]

    kept = client.get(
        "/evaluations/ifr-1/output", headers={"Range": "bytes=0-9", "If-Range": current}
    )
    assert (kept.status_code, kept.content) == (206, text.encode()[:10])
    stale = client.get(
        "/evaluations/ifr-1/output",
        headers={"Range": "bytes=0-9", "If-Range": '"1"', "Accept-Encoding": "identity"},
    )
    assert (stale.status_code, stale.content) == (200, text.encode())


def test_a_missing_blob_is_a_problem_response_not_a_broken_body(
    client: Client, backend_settings: Settings
) -> None:
    new(client, "lost-2")
    assert client.put("/evaluations/lost-2", json={"output": "z" * 200_000}).is_success
    [blob] = (Path(backend_settings.storage.file_storage_path) / "evaluations" / "lost-2").glob(
        "output.*"
    )
    blob.unlink()

    response = client.get("/evaluations/lost-2/output", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/blob-missing")
