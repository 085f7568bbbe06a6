"""What the platform's storage pages, evaluation page and gateway read, from real data.

Each test reads the property paths one client reads (``frontend/app/storage/page.tsx``,
``frontend/app/storage/{database,file,redis}/page.tsx``,
``frontend/app/evaluation/[id]/page.tsx``, the gateway's ``/api/status``) after the
records, events, logs and large outputs were written as the platform writes them. A
page throws on a missing nested object, so every path is walked with ``at``, which
names the path that is missing; values are checked against what was written.
"""

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from interfaces.settings import Settings, StorageBackend

Client = TestClient[Any]

LARGE = "".join(f"line {i:06}\n" for i in range(20_000))  # 240 000 bytes: a file blob
CODE = "print('hello')"
EVENTS = [("e-done", "running", "container up"), ("e-done", "completed", "exit 0")]


def at(body: Any, path: str) -> Any:
    """``body`` followed along ``a.b.0.c``; a missing step fails naming the path so far."""
    value = body
    walked: list[str] = []
    for step in path.split("."):
        walked.append(step)
        if isinstance(value, list):
            assert step.isdigit() and int(step) < len(value), f"no {'.'.join(walked)}"
            value = value[int(step)]
        else:
            assert isinstance(value, dict) and step in value, f"no {'.'.join(walked)}"
            value = value[step]
    return value


def is_date(value: Any) -> bool:
    """What ``new Date(value)`` reads as a date: an ISO 8601 string."""
    if not isinstance(value, str):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def ok(response: Any) -> Any:
    assert response.is_success, response.text
    return response


def create(client: Client, eval_id: str) -> None:
    """As the storage worker creates a record."""
    ok(
        client.post(
            "/evaluations",
            json={
                "id": eval_id,
                "code": CODE,
                "language": "python",
                "status": "submitted",
                "metadata": {"source": "platform-test"},
            },
        )
    )


def update(client: Client, eval_id: str, **body: Any) -> None:
    ok(client.put(f"/evaluations/{eval_id}", json=body))


@pytest.fixture
def seeded(client: Client) -> Client:
    """One evaluation of each kind: done, failed with a large output, running, new."""
    for eval_id in ("e-done", "e-large", "e-running", "e-new"):
        create(client, eval_id)
    for eval_id in ("e-done", "e-large", "e-running"):
        for status in ("queued", "provisioning", "running"):
            update(client, eval_id, status=status)
    update(client, "e-done", status="completed", output="hello\n", runtime_ms=120)
    update(client, "e-large", status="failed", output=LARGE, error="Traceback: boom", runtime_ms=80)
    for eval_id, kind, message in EVENTS:
        ok(
            client.post(
                f"/evaluations/{eval_id}/events",
                json={"type": kind, "message": message, "metadata": {"step": kind}},
            )
        )
    ok(client.post("/evaluations/e-done/logs", json={"content": "hello\n"}))
    ok(client.get("/evaluations/e-done"))  # now in the cache
    return client


def cache_name(settings: Settings) -> str:
    return "redis" if settings.redis.url else "memory"


def primary(settings: Settings) -> str:
    """The primary's name in the answers: ``database``, or ``file`` for the file backend
    (a name the original service gave too)."""
    return settings.storage.backend.value


def files_on_disk(settings: Settings) -> list[Path]:
    """Every file of the file backend's tree: its records' copies, blobs and index."""
    return [path for path in settings.storage.file_storage_path.rglob("*") if path.is_file()]


def test_gateway_status_reads_statistics(seeded: Client, backend_settings: Settings) -> None:
    stats = ok(seeded.get("/statistics")).json()

    # What /api/status copies into its answer.
    assert at(stats, "total_evaluations") == 4
    assert at(stats, "by_status") == {"completed": 1, "failed": 1, "running": 1, "submitted": 1}
    assert at(stats, "storage_info.primary_backend") == primary(backend_settings)
    assert at(stats, "storage_info.large_outputs_externalized") == 1
    # The rest of the original's answer (/api/statistics passes it through).
    assert at(stats, "by_language") == {"python": 4}
    assert at(stats, "average_runtime_ms") == 100
    assert at(stats, "success_rate") == 0.5
    assert at(stats, "last_24h_count") == 4
    assert is_date(at(stats, "peak_hour"))


def test_statistics_success_rate_is_zero_without_finished_evaluations(client: Client) -> None:
    create(client, "only")

    stats = ok(client.get("/statistics")).json()

    assert (stats["success_rate"], stats["last_24h_count"]) == (0.0, 1)
    assert stats["average_runtime_ms"] is None


def test_storage_info_has_the_original_fields(client: Client, backend_settings: Settings) -> None:
    info = ok(client.get("/storage-info")).json()

    assert at(info, "primary_backend") == primary(backend_settings)
    assert at(info, "fallback_backend") == "file"
    assert at(info, "cache_enabled") is True
    assert at(info, "large_output_storage") == "file"
    assert (
        at(info, "storage_thresholds.inline_threshold")
        == backend_settings.storage.large_file_threshold
    )
    assert at(info, "storage_thresholds.preview_size") == backend_settings.storage.preview_size
    available = ["file", cache_name(backend_settings)]
    if backend_settings.storage.backend is not StorageBackend.FILE:
        available.insert(0, "database")
    assert at(info, "backends_available") == available


@pytest.mark.alone("the file store's figures are the deployment's")
def test_storage_page_reads_the_overview(seeded: Client, backend_settings: Settings) -> None:
    overview = ok(seeded.get("/storage/overview")).json()
    cache = cache_name(backend_settings)

    assert at(overview, "summary.total_evaluations") == 4
    assert number(at(overview, "summary.total_storage_bytes"))
    assert at(overview, "summary.active_backends") == 4
    backends = at(overview, "backends")
    assert set(backends) == {"database", "file", cache, "fallback"}
    for name, backend in backends.items():  # every card: its type and status.toUpperCase()
        assert isinstance(at(backend, "type"), str), name
        assert at(backend, "status") == "healthy", name
        assert isinstance(at(backend, "metrics"), dict), name

    database = at(backends, "database.metrics")
    assert at(database, "evaluations") == 4
    assert at(database, "events") == len(EVENTS)
    assert at(database, "size_bytes") > 0
    assert is_date(at(database, "oldest_record"))

    files = at(backends, "file.metrics")
    assert at(files, "total_size_bytes") > 0
    if backend_settings.storage.backend is StorageBackend.FILE:  # every record is files
        assert at(files, "files") == len(files_on_disk(backend_settings))
    else:
        assert at(files, "files") == 2  # the large output and its record's metadata.json
        assert at(files, "directories") == 2  # evaluations/, evaluations/e-large/
        assert at(files, "largest_file").startswith("evaluations/e-large/")
    assert at(overview, "summary.total_storage_bytes") == (
        at(database, "size_bytes") + at(files, "total_size_bytes")
    )

    metrics = at(backends, f"{cache}.metrics")
    if cache == "redis":
        assert at(metrics, "keys") >= 1
        assert at(metrics, "memory_used_bytes") > 0
        assert 0 < at(metrics, "hit_rate") <= 1  # (hit_rate || 0).toFixed(2)
        assert at(metrics, "ttl_stats.ttl_sampled_keys") == at(metrics, "keys")
    else:
        assert at(metrics, "cached_evaluations") >= 1
        assert at(metrics, "cache_size_bytes") > 0
        assert at(metrics, "eviction_count") == 0
        assert at(metrics, "hit_rate") > 0
        assert at(metrics, "ttl_stats.ttl_sampled_keys") >= 1
    assert at(metrics, "cache_hits") >= 1
    assert number(at(metrics, "cache_misses"))


def test_database_page_reads_the_details(seeded: Client) -> None:
    details = ok(seeded.get("/storage/database/details")).json()

    assert at(details, "backend") == "database"
    assert at(details, "connection") in {"postgresql", "sqlite"}
    assert at(details, "tables.evaluations.count") == 4
    assert at(details, "tables.evaluations.by_status") == {
        "completed": 1,
        "failed": 1,
        "running": 1,
        "submitted": 1,
    }
    assert {"id", "code", "status", "created_at"} <= set(at(details, "tables.evaluations.columns"))
    assert at(details, "tables.evaluation_events.count") == len(EVENTS)
    columns = at(details, "tables.evaluation_events.columns")
    assert {"evaluation_id", "event_type", "timestamp", "message"} <= set(columns)
    recent = at(details, "recent_evaluations")
    assert {row["id"] for row in recent} == {"e-done", "e-large", "e-running", "e-new"}
    for index in range(len(recent)):
        assert isinstance(at(recent, f"{index}.id"), str)  # evaluation.id.substring(0, 8)
        assert isinstance(at(recent, f"{index}.status"), str)
        assert at(recent, f"{index}.language") == "python"
        assert at(recent, f"{index}.code") == CODE
        assert is_date(at(recent, f"{index}.created_at"))


@pytest.mark.alone("the file store's figures are the deployment's")
def test_file_page_reads_the_details(seeded: Client, backend_settings: Settings) -> None:
    details = ok(seeded.get("/storage/file/details")).json()

    assert at(details, "backend") == "file"
    assert at(details, "path") == str(backend_settings.storage.file_storage_path)
    files = at(details, "files")
    for index in range(len(files)):
        assert isinstance(at(files, f"{index}.path"), str)  # file.path.split('/')
        assert number(at(files, f"{index}.size"))
        assert is_date(at(files, f"{index}.modified"))
    if backend_settings.storage.backend is StorageBackend.FILE:
        assert at(details, "total_files") == len(files) == len(files_on_disk(backend_settings))
        assert any(f["path"].startswith("evaluations/e-large/output.") for f in files)
        return
    assert at(details, "total_files") == len(files) == 2
    # Largest first: the compressed output, then the record beside it.
    assert [f["path"].split("/")[:2] for f in files] == [["evaluations", "e-large"]] * 2
    assert files[0]["path"].startswith("evaluations/e-large/output.")
    assert files[1]["path"] == "evaluations/e-large/metadata.json"
    assert files[0]["size"] >= files[1]["size"]
    on_disk = backend_settings.storage.file_storage_path / files[0]["path"]
    assert files[0]["size"] == on_disk.stat().st_size


def test_redis_page_reads_the_cache_whatever_it_runs_on(
    seeded: Client, backend_settings: Settings
) -> None:
    details = ok(seeded.get("/storage/redis/details")).json()

    assert at(details, "backend") == cache_name(backend_settings)
    assert at(details, "status") == "healthy"
    keys = at(details, "info.keys")
    assert all(isinstance(key, str) for key in keys)
    assert "eval:{e-done}" in keys
    assert isinstance(at(details, "info.memory"), dict)
    assert at(details, "info.memory.used_memory_bytes") > 0
    assert at(details, "info.stats.hits") >= 1
    # ``cache`` is this service's own name for the same backend.
    assert ok(seeded.get("/storage/cache/details")).json()["info"]["keys"] == keys


def test_evaluation_page_reads_the_complete_view(
    seeded: Client, backend_settings: Settings
) -> None:
    body = ok(seeded.get("/evaluations/e-large/complete")).json()

    evaluation = at(body, "evaluation")
    assert at(evaluation, "id") == "e-large"
    assert at(evaluation, "code") == CODE
    assert at(evaluation, "language") == "python"
    assert at(evaluation, "status") == "failed"  # evalData.status.toUpperCase()
    assert is_date(at(evaluation, "created_at"))
    assert is_date(at(evaluation, "completed_at"))
    assert at(evaluation, "output") == LARGE  # whole, not the preview
    assert at(evaluation, "error") == "Traceback: boom"
    assert at(evaluation, "runtime_ms") == 80
    assert at(body, "metadata.total_events") == 0
    assert at(body, "metadata.execution_time_ms") == 80
    assert at(body, "metadata.output_size") == len(LARGE.encode())
    assert at(body, "metadata.error_size") == len(b"Traceback: boom")
    locations = at(body, "storage_locations")
    assert all(isinstance(location, str) for location in locations.values())  # startsWith
    assert locations["metadata"].startswith(primary(backend_settings))
    assert locations["error"].startswith(primary(backend_settings))
    assert locations["output"].startswith("file://")
    assert locations["output"].endswith(".txt.zst")
    timeline = at(body, "timeline")
    assert [entry["event"] for entry in timeline] == ["created", "started", "failed"]
    for index in range(len(timeline)):
        assert is_date(at(timeline, f"{index}.timestamp"))
        assert isinstance(at(timeline, f"{index}.details"), str)


def test_complete_view_carries_events_and_logs(seeded: Client, backend_settings: Settings) -> None:
    body = ok(seeded.get("/evaluations/e-done/complete")).json()

    assert at(body, "metadata.total_events") == len(EVENTS)
    events = at(body, "events")
    assert [(e["type"], e["message"]) for e in events] == [(k, m) for _, k, m in EVENTS]
    assert all(is_date(event["timestamp"]) for event in events)
    timeline = at(body, "timeline")
    # In time order: the events were posted after the record was completed.
    assert [(entry["event"], entry["details"]) for entry in timeline] == [
        ("created", "Evaluation created"),
        ("started", "Started"),
        ("completed", "Status: completed"),
        ("running", "container up"),
        ("completed", "exit 0"),
    ]
    assert at(body, "logs") == "hello\n"
    assert at(body, "evaluation.output") == "hello\n"
    assert at(body, "storage_locations.output") == primary(backend_settings)


def test_complete_view_of_a_new_evaluation(seeded: Client, backend_settings: Settings) -> None:
    body = ok(seeded.get("/evaluations/e-new/complete")).json()

    assert at(body, "evaluation.status") == "submitted"
    assert at(body, "evaluation.output") is None
    assert at(body, "evaluation.completed_at") is None
    assert at(body, "metadata") == {
        "total_events": 0,
        "execution_time_ms": None,
        "output_size": 0,
        "error_size": 0,
    }
    assert at(body, "storage_locations") == dict.fromkeys(
        ("metadata", "events", "logs"), primary(backend_settings)
    )
    assert [entry["event"] for entry in at(body, "timeline")] == ["created"]


def test_complete_view_of_an_unknown_evaluation_is_404(client: Client) -> None:
    response = client.get("/evaluations/nobody/complete")

    assert response.status_code == 404  # the page shows "HTTP error! status: 404"


# ``/storage/cache/details`` as it was before the cache analytics (issue 23) added
# ``info.classes`` and ``info.warming``: every field the platform's page may read, by kind.
CACHE_DETAILS_FIELDS: dict[str, type] = {
    "name": str,
    "type": str,
    "status": str,
    "metrics": dict,
    "details": dict,
    "error": type(None),
    "backend": str,
    "info": dict,
}
CACHE_INFO_FIELDS: dict[str, type] = {"keys": list, "memory": dict, "stats": dict}
CACHE_METRICS = {
    "memory": {"entries", "hits", "misses", "hit_rate", "evictions"},
    "redis": {"hits", "misses", "hit_rate", "keys", "used_memory_bytes", "measured_at"},
}
CACHE_STATS = {
    "memory": {"entries", "hits", "misses", "hit_rate", "evictions", "max_entries", "ttl_seconds"},
    "redis": {
        "keys",
        "hits",
        "misses",
        "hit_rate",
        "keys_exact",
        "server_keyspace_hits",
        "server_keyspace_misses",
        "server_evicted_keys",
    },
}
CACHE_MEMORY = {
    "memory": {"used_memory_bytes"},
    "redis": {"used_memory_bytes", "used_memory_peak_bytes", "maxmemory_bytes"},
}


def test_cache_details_keep_every_field_they_had(
    seeded: Client, backend_settings: Settings
) -> None:
    kind = cache_name(backend_settings)
    for path in ("/storage/cache/details", "/storage/redis/details"):
        details = ok(seeded.get(path)).json()

        for field, kind_of in CACHE_DETAILS_FIELDS.items():
            assert isinstance(at(details, field), kind_of), (path, field)
        for field, kind_of in CACHE_INFO_FIELDS.items():
            assert isinstance(at(details, f"info.{field}"), kind_of), (path, field)
        # The metrics are exactly what they were; the stats and memory kept every name.
        assert set(at(details, "metrics")) == CACHE_METRICS[kind], path
        assert CACHE_STATS[kind] <= set(at(details, "info.stats")), path
        assert CACHE_MEMORY[kind] <= set(at(details, "info.memory")), path
        for name in ("hits", "misses"):
            assert at(details, f"info.stats.{name}") == at(details, f"metrics.{name}")
            assert number(at(details, f"info.stats.{name}"))
        # What the analytics added beside them.
        assert set(at(details, "info.classes")) == {"records", "running", "log_tail", "other"}
        assert set(at(details, "info.warming")) == {"fills", "hits", "hit_share"}
