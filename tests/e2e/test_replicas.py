"""Two service processes share PostgreSQL, Redis and S3 and nothing else.

Each replica has its own empty local directory: a write through one is read
through the other at once (the cache and its invalidation live in Redis), the
running registry agrees, and no request needs a replica's local disk.
"""

import asyncio
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import replicas
from tests.s3_server import S3Server, unique_prefix
from tests.services import (
    TEST_REDIS_URL,
    drop_redis_keys,
    owned_postgres_database,
    redis_test_prefix,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis, pytest.mark.s3]

BIG = "replicated output ✓\n" * 10_000  # > 100 KiB: an S3 object


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            raw = response.read()
            return response.status, raw if "json" not in response.headers.get(
                "Content-Type", ""
            ) else json.loads(raw)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def local_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_two_replicas_share_everything_but_their_disks(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    prefix = redis_test_prefix()
    with owned_postgres_database() as urls:  # the service under row-level security
        common = {
            **os.environ,
            **s3_server.env(),
            "DATABASE_URL": urls.service.replace("postgresql+asyncpg://", "postgresql://"),
            "MIGRATION_DATABASE_URL": urls.owner.replace("postgresql+asyncpg://", "postgresql://"),
            "REDIS_URL": TEST_REDIS_URL,
            "REDIS_KEY_PREFIX": prefix,
            "BLOB_BACKEND": "s3",
            "S3_BUCKET": s3_bucket,
            "S3_PREFIX": unique_prefix(),
            "LOG_LEVEL": "WARNING",
        }
        disks = {name: tmp_path / f"replica-{name}" for name in ("a", "b")}
        try:
            with replicas(
                (
                    {**common, "FILE_STORAGE_PATH": str(disks["a"])},
                    {**common, "FILE_STORAGE_PATH": str(disks["b"])},
                ),
                (tmp_path / "a.log", tmp_path / "b.log"),
            ) as (a, b):
                _exercise(a, b)
                assert local_files(disks["a"]) == []
                assert local_files(disks["b"]) == []
        finally:
            asyncio.run(drop_redis_keys(prefix))


def _exercise(a: str, b: str) -> None:
    status, _ = call("POST", f"{a}/evaluations", {"id": "rep-1", "code": "x", "status": "queued"})
    assert status == 200
    # B reads (and caches) version 1, then A writes: B must see the write at once.
    status, record = call("GET", f"{b}/evaluations/rep-1")
    assert (status, record["status"]) == (200, "queued")
    for version, body in enumerate(
        [
            {"status": "provisioning", "executor_id": "x-1"},
            {"status": "running", "container_id": "c-1", "output": BIG},
        ],
        start=2,
    ):
        status, written = call("PUT", f"{a}/evaluations/rep-1", body)
        assert status == 200, written
        status, seen = call("GET", f"{b}/evaluations/rep-1?include_storage_info=true")
        assert status == 200
        assert seen["status"] == body["status"], version
        for field in ("executor_id", "container_id"):
            if field in body:
                assert seen[field] == body[field]
    assert seen["_storage_info"]["output_location"] == "s3"

    # The running registry is one for both.
    for base in (a, b):
        status, listed = call("GET", f"{base}/evaluations/running")
        assert status == 200
        assert [item["eval_id"] for item in listed["running_evaluations"]] == ["rep-1"], listed
        assert listed["running_evaluations"][0]["container_id"] == "c-1"

    # The output written through A streams from S3 through B, ranged and whole.
    status, text = call("GET", f"{b}/evaluations/rep-1/output")
    assert (status, text) == (200, BIG.encode())
    status, part = call("GET", f"{b}/evaluations/rep-1/output", headers={"Range": "bytes=0-9"})
    assert (status, part) == (206, BIG.encode()[:10])
    status, link = call("GET", f"{b}/evaluations/rep-1/output-url")
    assert status == 200
    assert link["content_encoding"] == "zstd"

    # B finishes it; A's view and running list follow.
    status, _ = call("PUT", f"{b}/evaluations/rep-1", {"status": "completed"})
    assert status == 200
    status, record = call("GET", f"{a}/evaluations/rep-1")
    assert record["status"] == "completed"
    for base in (a, b):
        status, listed = call("GET", f"{base}/evaluations/running")
        assert status == 200
        assert listed["running_evaluations"] == [], listed

    # Soft delete through A is seen by B at once (tombstone in the shared cache).
    status, deleted = call("DELETE", f"{a}/evaluations/rep-1")
    assert status == 200 and deleted["message"] == "Evaluation deleted successfully"
    status, _ = call("GET", f"{b}/evaluations/rep-1")
    assert status == 404
