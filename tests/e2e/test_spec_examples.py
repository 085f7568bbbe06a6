"""Start the real server process and run every curl example of the spec against it."""

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.services import (
    TEST_REDIS_URL,
    owned_postgres_database,
    redis_test_prefix,
    serve_subprocess,
)

pytestmark = pytest.mark.e2e
CURL = shutil.which("curl")


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    env = {**os.environ, "FILE_STORAGE_PATH": str(tmp_path / "files")}
    env.pop("REDIS_URL", None)
    if request.param == "embedded":
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'storage.db'}"
        yield from _run(env, tmp_path)
        return
    with owned_postgres_database() as urls:  # the service under row-level security
        env["DATABASE_URL"] = urls.service.replace("postgresql+asyncpg://", "postgresql://")
        env["MIGRATION_DATABASE_URL"] = urls.owner.replace("postgresql+asyncpg://", "postgresql://")
        env["REDIS_URL"] = TEST_REDIS_URL
        env["REDIS_KEY_PREFIX"] = redis_test_prefix()
        yield from _run(env, tmp_path)


def _run(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with serve_subprocess(env, tmp_path / "server.log") as (base, _pid):
        yield base


def _curl() -> str:
    assert CURL is not None, "curl is needed for the spec's examples"
    return CURL


def curl(*args: str) -> tuple[int, Any]:
    result = subprocess.run(
        [_curl(), "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, check=True
    )
    body, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(body) if body.strip() else None


def curl_json(method: str, url: str, data: str) -> tuple[int, Any]:
    """``curl -X METHOD URL -H "Content-Type: application/json" -d DATA``, as the spec writes it."""
    return curl("-X", method, url, "-H", "Content-Type: application/json", "-d", data)


def test_every_curl_example_of_the_spec(server: str) -> None:
    status, info = curl(f"{server}/storage-info")
    assert status == 200 and info["large_file_threshold"] == 102400

    status, created = curl_json(
        "POST",
        f"{server}/evaluations",
        '{\n    "id": "test-123",\n    "code": "print(\\"Hello\\")",\n    "language": "python",\n    "status": "queued"\n  }',
    )
    assert status == 200 and created["id"] == "test-123" and created["code"] == 'print("Hello")'

    status, created = curl_json(
        "POST",
        f"{server}/evaluations",
        """{
    "id": "eval_20240701_120000_abc123",
    "code": "for i in range(10):\\n    print(f\\"Count: {i}\\")",
    "language": "python",
    "status": "queued",
    "metadata": {
      "submitted_by": "api",
      "priority": "normal"
    }
  }""",
    )
    assert status == 200 and created["metadata"] == {"submitted_by": "api", "priority": "normal"}

    status, updated = curl_json(
        "PUT",
        f"{server}/evaluations/eval_20240701_120000_abc123",
        '{\n    "status": "completed",\n    "output": "Count: 0\\nCount: 1\\n...",\n    "runtime_ms": 150\n  }',
    )
    assert status == 200 and updated["status"] == "completed" and updated["runtime_ms"] == 150

    status, record = curl(
        f"{server}/evaluations/eval_20240701_120000_abc123?include_storage_info=true"
    )
    assert status == 200
    assert record["id"] == "eval_20240701_120000_abc123"
    assert record["status"] == "completed"
    assert record["output"] == "Count: 0\nCount: 1\n..."
    assert record["_storage_info"]["output_location"] == "inline"
    assert record["_storage_info"]["output_size"] == len(b"Count: 0\nCount: 1\n...")
    assert record["_storage_info"]["output_truncated"] is False

    status, running = curl(f"{server}/evaluations/running")
    assert status == 200 and running["count"] == 0

    status, _ = curl_json(
        "POST",
        f"{server}/evaluations",
        '{"id": "eval_123", "code": "x"}',
    )
    assert status == 200
    status, celery = curl_json(
        "POST",
        f"{server}/evaluations/eval_123/celery-update",
        '{\n    "celery_task_id": "celery-task-456",\n    "task_state": "SUCCESS",\n    "retries": 0,\n    "output": "Task completed successfully"\n  }',
    )
    assert status == 200 and celery["applied"] is True
    assert celery["evaluation"]["status"] == "completed"
    assert celery["evaluation"]["output"] == "Task completed successfully"

    status, health = curl(f"{server}/health")
    assert status == 200 and health["status"] == "healthy"

    status, overview = curl(f"{server}/storage/overview")
    assert status == 200
    database = overview["backends"]["database"]
    assert database["status"] == "healthy"
    assert database["metrics"]["evaluations"] == 3
    assert database["metrics"]["size_bytes"] > 0
    assert "files" in overview["backends"]["file"]["metrics"]
    assert "total_size_bytes" in overview["backends"]["file"]["metrics"]

    docs = subprocess.run(
        [_curl(), "-sS", f"{server}/docs"], capture_output=True, text=True, check=True
    )
    assert "swagger" in docs.stdout.lower()
    spec = subprocess.run(
        [_curl(), "-sS", f"{server}/openapi.yaml"], capture_output=True, text=True, check=True
    )
    document = yaml.safe_load(spec.stdout)
    assert document["openapi"].startswith("3.")
    assert "/evaluations/{eval_id}/celery-update" in document["paths"]
