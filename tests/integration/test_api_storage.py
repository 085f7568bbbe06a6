"""Storage figures, statistics, health and docs: measured, never placeholders."""

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from interfaces.settings import FallbackBackend, Settings, StorageBackend

Client = TestClient[Any]


def fill(client: Client) -> None:
    for i, (language, status) in enumerate(
        [("python", "completed"), ("python", "failed"), ("rust", "queued")]
    ):
        client.post("/evaluations", json={"id": f"s-{i}", "code": "x", "language": language})
        if status != "queued":
            client.put(f"/evaluations/s-{i}", json={"status": "running"})
            client.put(f"/evaluations/s-{i}", json={"status": status, "runtime_ms": 100 * (i + 1)})
    client.put("/evaluations/s-2", json={"output": "z" * 200_000})
    client.post("/evaluations/s-0/events", json={"event_type": "a"})
    client.post("/evaluations/s-0/logs", json={"content": "12345"})


def test_statistics(client: Client, backend_settings: Settings) -> None:
    fill(client)
    stats = client.get("/statistics").json()
    assert stats["total_evaluations"] == 3
    assert stats["by_status"] == {"completed": 1, "failed": 1, "queued": 1}
    assert stats["by_language"] == {"python": 2, "rust": 1}
    assert stats["average_runtime_ms"] == 150
    assert stats["success_rate"] == 0.5
    assert stats["last_24h_count"] == 3
    assert stats["peak_hour"].endswith(":00:00Z")
    assert stats["storage_info"] == {
        "primary_backend": backend_settings.storage.backend.value,
        "cache_enabled": True,
        "large_output_storage": "file",
        "large_outputs_externalized": 1,
    }
    assert stats["runtime"]["count"] == 2
    assert stats["runtime"]["average_ms"] == 150
    assert stats["runtime"]["max_ms"] == 200
    assert stats["bytes_by_location"]["file"] == 200_000
    assert stats["payloads_by_location"] == {"file": 1}
    assert stats["events"] == 1
    assert stats["log_bytes"] == 5


def test_storage_info_shows_configuration(client: Client, backend_settings: Any) -> None:
    info = client.get("/storage-info").json()
    cache = "redis" if backend_settings.redis.url else "memory"
    assert info["primary_backend"] == backend_settings.storage.backend.value
    assert info["fallback_backend"] == "file"
    assert info["cache_enabled"] is True
    assert info["large_output_storage"] == "file"
    assert info["storage_thresholds"] == {
        "inline_threshold": 102_400,
        "preview_size": 1000,
        "compression_threshold": 10_240,
    }
    file_backend = backend_settings.storage.backend is StorageBackend.FILE
    assert info["backends_available"] == (
        ["file", cache] if file_backend else ["database", "file", cache]
    )
    assert info["large_file_threshold"] == 102_400
    assert info["compression_threshold"] == 10_240
    assert info["preview_size"] == 1000
    assert info["cache"] == cache
    database = "postgresql" if backend_settings.database.is_postgres else "sqlite"
    assert info["database"] == ("file" if file_backend else database)


def test_storage_info_without_fallback_or_cache(make_client: Any) -> None:
    client = make_client(
        storage={"fallback_backend": FallbackBackend.NONE}, cache={"enabled": False}
    )
    info = client.get("/storage-info").json()
    assert info["fallback_backend"] is None
    assert info["cache_enabled"] is False
    assert info["cache"] == "disabled"


@pytest.mark.alone("the file store's figures are the deployment's")
def test_overview_measures_backends(client: Client, backend_settings: Any) -> None:
    fill(client)
    overview = client.get("/storage/overview").json()
    backends = overview["backends"]
    cache = "redis" if backend_settings.redis.url else "memory"
    assert set(backends) == {"database", "file", cache, "fallback"}
    assert backends["fallback"]["type"] == "file"
    assert backends["fallback"]["metrics"]["pending_replay"] == 0
    assert backends["database"]["status"] == "healthy"
    assert backends["database"]["metrics"]["evaluations"] == 3
    assert backends["database"]["metrics"]["size_bytes"] > 0
    files = 2  # output.txt.zst + metadata.json
    if backend_settings.storage.backend is StorageBackend.FILE:
        tree = Path(backend_settings.storage.file_storage_path)
        files = sum(1 for path in tree.rglob("*") if path.is_file())  # the records and index
    assert backends["file"]["metrics"]["files"] == files
    assert backends["file"]["metrics"]["total_size_bytes"] > 0
    assert backends[cache]["status"] == "healthy"
    assert overview["status"] == "healthy"
    summary = overview["summary"]
    assert summary["total_evaluations"] == 3
    assert summary["total_storage_bytes"] == (
        backends["database"]["metrics"]["size_bytes"]
        + backends["file"]["metrics"]["total_size_bytes"]
    )
    assert summary["active_backends"] == 4


def test_backend_details(client: Client, backend_settings: Any) -> None:
    fill(client)
    cache = "redis" if backend_settings.redis.url else "memory"
    expected = {"database": "database", "file": "file", "cache": cache, "redis": cache}
    for path, backend in expected.items():
        response = client.get(f"/storage/{path}/details")
        assert response.status_code == 200, response.text
        assert response.json()["backend"] == backend
        assert response.json()["name"] == ("cache" if path == "redis" else path)
    fallback = client.get("/storage/fallback/details")
    assert fallback.status_code == 200, fallback.text
    assert fallback.json()["name"] == "fallback"
    missing = client.get("/storage/tape/details")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert "redis" in missing.json()["known"]


def test_health(client: Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert {name: b["status"] for name, b in body["backends"].items()} == {
        "database": "healthy",
        "file": "healthy",
        "cache": "healthy",
        "fallback": "healthy",
    }
    assert body["pending_replay"] == 0
    assert body["oldest_pending_age_s"] is None
    assert body["fallback_durable"] is True


def test_docs_are_served_locally(client: Client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in (
        "/evaluations",
        "/evaluations/{eval_id}",
        "/evaluations/running",
        "/evaluations/{eval_id}/logs",
        "/evaluations/{eval_id}/events",
        "/evaluations/{eval_id}/celery-update",
        "/storage-info",
        "/storage/overview",
        "/storage/{backend}/details",
        "/evaluations/{eval_id}/complete",
        "/statistics",
        "/health",
    ):
        assert path in spec["paths"], path
    create = spec["paths"]["/evaluations"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in create["parameters"]]
    assert client.get("/docs/openapi.json").json() == spec  # one document, touched once
    yaml_doc = client.get("/openapi.yaml")
    assert yaml_doc.status_code == 200
    assert "/evaluations/{eval_id}/celery-update" in yaml_doc.text


def test_oversized_body_is_413(make_client: Any) -> None:
    client = make_client(limits={"request_bytes": 1000})
    response = client.post("/evaluations", json={"code": "x" * 2000})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
