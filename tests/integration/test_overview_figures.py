"""Overview, details and statistics agree with the records over HTTP after writes,
soft deletes and a cleanup, on every backend configuration (their figures come from
counters, an index of deleted records and kept measurements, not from counting)."""

import time
from typing import Any

import pytest
from litestar.testing import TestClient

from application.queries import PERCENTILES, nearest_rank
from application.runtime_buckets import runtime_bucket
from interfaces.settings import Settings, StorageBackend
from tests.integration.test_cli_maintenance import cli_json

RUNTIMES = {"f-fast": 40, "f-second": 1_500, "f-long": 123_456}


def _create(client: TestClient[Any]) -> None:
    for name, runtime in RUNTIMES.items():
        assert client.post("/evaluations", json={"id": name, "code": "x"}).is_success
        assert client.put(f"/evaluations/{name}", json={"status": "running"}).is_success
        done = {"status": "completed", "runtime_ms": runtime}
        assert client.put(f"/evaluations/{name}", json=done).is_success
    for name in ("f-queued", "f-gone"):
        assert client.post("/evaluations", json={"id": name, "code": "x"}).is_success
    big = {"output": "z" * 200_000}
    assert client.put("/evaluations/f-long", json=big).is_success
    for event in ("a", "b"):
        body = {"event_type": "note", "event_id": event}
        assert client.post("/evaluations/f-fast/events", json=body).is_success
    assert client.post("/evaluations/f-gone/events", json={"event_type": "x"}).is_success
    assert client.post("/evaluations/f-fast/logs", json={"content": "12345"}).is_success


def _figures(client: TestClient[Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    overview = client.get("/storage/overview").json()
    details = client.get("/storage/database/details").json()
    statistics = client.get("/statistics").json()
    return overview, details, statistics


def _assert_agree(client: TestClient[Any], live: dict[str, str], deleted: int, events: int) -> None:
    overview, details, statistics = _figures(client)
    database = overview["backends"]["database"]["metrics"]
    assert database["evaluations"] == overview["summary"]["total_evaluations"] == len(live)
    assert details["tables"]["evaluations"]["count"] == statistics["total_evaluations"]
    assert statistics["total_evaluations"] == len(live)
    by_status: dict[str, int] = {}
    for status in live.values():
        by_status[status] = by_status.get(status, 0) + 1
    assert details["tables"]["evaluations"]["by_status"] == by_status
    assert statistics["by_status"] == by_status
    assert statistics["events"] == database["events"] == events
    if overview["backends"]["database"]["type"] != "memory":
        assert database["deleted"] == deleted
        assert details["details"]["evaluations_rows"] == len(live) + deleted
    runtimes = sorted(RUNTIMES[name] for name in live if name in RUNTIMES)
    runtime = statistics["runtime"]
    assert runtime["count"] == len(runtimes)
    if not runtimes:
        assert runtime["p50_ms"] is runtime["max_ms"] is None
        return
    for percentile in PERCENTILES:
        exact = runtimes[nearest_rank(percentile, len(runtimes))]
        assert runtime_bucket(runtime[f"p{percentile}_ms"]) == runtime_bucket(exact)
    assert runtime_bucket(runtime["max_ms"]) == runtime_bucket(runtimes[-1])


@pytest.mark.alone("the file store's figures and cleanup are the deployment's")
def test_figures_follow_writes_deletes_and_cleanup(
    client: TestClient[Any], backend_settings: Settings
) -> None:
    _create(client)
    live = dict.fromkeys(RUNTIMES, "completed") | {"f-queued": "queued", "f-gone": "queued"}
    _assert_agree(client, live, deleted=0, events=3)

    assert client.delete("/evaluations/f-gone").status_code == 200
    del live["f-gone"]
    _assert_agree(client, live, deleted=1, events=2)
    files = client.get("/storage/overview").json()["backends"]["file"]["metrics"]
    assert files["files"] >= 1  # f-long's output (and its record's snapshot)

    if backend_settings.storage.backend == "memory":
        return  # the cleanup command works on a database the next process opens
    time.sleep(1.1)  # the shortest age cleanup takes is a second
    done = cli_json(backend_settings, "cleanup", "--older-than", "1s", "--include-deleted")
    assert done["evaluations"] == 4  # the three completed and the deleted one
    live = {"f-queued": "queued"}
    _assert_agree(client, live, deleted=0, events=0)
    files = client.get("/storage/overview").json()["backends"]["file"]["metrics"]["files"]
    if backend_settings.storage.backend is StorageBackend.FILE:  # the index is files too
        tree = backend_settings.storage.file_storage_path
        assert [path.name for path in (tree / "evaluations").iterdir()] == ["f-queued"]
        assert files == sum(1 for path in tree.rglob("*") if path.is_file())
    else:
        assert files == 0
