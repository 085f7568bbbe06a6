"""``STORAGE_BACKEND=memory`` over HTTP: the product's non-durable deployment, built by
the same providers as the others (records, blobs, cache and registry in this process)."""

from typing import Any

from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.settings import FallbackBackend, StorageBackend, load_settings


def _client() -> TestClient[Any]:
    settings = load_settings(
        {},
        storage={
            "backend": StorageBackend.MEMORY,
            "fallback_backend": FallbackBackend.NONE,
            "large_file_threshold": 64,
            "compression_threshold": 32,
        },
    )
    return TestClient(create_app(settings))


def test_a_record_its_large_output_log_and_events_live_in_memory() -> None:
    large = "line of output\n" * 20  # over the 64-byte threshold: a blob
    with _client() as client:
        created = client.post("/evaluations", json={"code": "print(1)", "id": "mem-1"})
        assert created.status_code == 200, created.text
        running = client.put("/evaluations/mem-1", json={"status": "running"})
        assert running.json()["status"] == "running"
        done = client.put("/evaluations/mem-1", json={"status": "completed", "output": large})
        assert done.status_code == 200, done.text
        assert done.json()["output_truncated"] is True
        assert client.get("/evaluations/mem-1/output").text == large
        appended = client.post("/evaluations/mem-1/logs", json={"content": "hello"})
        assert appended.json()["next_offset"] == 5
        assert (
            client.post(
                "/evaluations/mem-1/events", json={"type": "started", "message": "go"}
            ).json()["type"]
            == "started"
        )
        assert [e["type"] for e in client.get("/evaluations/mem-1/events").json()] == ["started"]
        listed = client.get("/evaluations").json()
        assert [e["id"] for e in listed["evaluations"]] == ["mem-1"]
        assert client.delete("/evaluations/mem-1").status_code == 200
        assert client.get("/evaluations/mem-1").status_code == 404
        health = client.get("/health").json()
        assert health["backends"]["database"]["type"] == "memory"
