"""The minimal app of ``make bench`` does the work the service does for list and update_large.

Its ``/list`` must answer the page the service answers for the same query (same fields,
values, total and cursor), and its ``/large/{id}`` must store what the service's
update stores: a zstd file of the output and the record pointing at it, one version on.
"""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
import zstandard
from litestar.testing import TestClient

from benchmarks import ceiling_app
from infrastructure.postgres.pool import driver_dsn
from interfaces.http.app import create_app
from interfaces.settings import load_settings
from tests.services import TEST_REDIS_URL, redis_test_keys

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
QUERY = "status=queued&language=python&limit=50"


@pytest.fixture
def service(migrated_url: str, tmp_path: Path) -> Iterator[TestClient[Any]]:
    with redis_test_keys() as prefix:
        settings = load_settings(
            {},
            database={"url": migrated_url},
            storage={"file_storage_path": tmp_path / "files"},
            redis={"url": TEST_REDIS_URL, "key_prefix": prefix},
        )
        with TestClient(create_app(settings)) as client:
            yield client


@pytest.fixture
def ceiling(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient[Any]]:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("CEILING_DATABASE_URL", driver_dsn(migrated_url))
    monkeypatch.setenv("CEILING_FILE_PATH", str(tmp_path / "ceiling"))
    with TestClient(ceiling_app.create_app()) as client:
        yield client


async def _stored(database: str, evaluation_id: str) -> dict[str, Any]:
    connection = await asyncpg.connect(driver_dsn(database))
    try:
        row = await connection.fetchrow(
            "SELECT version, output, output_location, output_size, output_compressed,"
            " output_key FROM evaluations WHERE id = $1",
            evaluation_id,
        )
    finally:
        await connection.close()
    assert row is not None
    return dict(row)


def _create(service: TestClient[Any], count: int, **fields: Any) -> None:
    for n in range(count):
        body = {"id": f"ceiling-{n}", "code": "print(1)\n", "language": "python", **fields}
        assert service.post("/evaluations", json=body).status_code == 200


def test_the_list_page_is_the_services_page(
    service: TestClient[Any], ceiling: TestClient[Any]
) -> None:
    _create(service, 55, metadata={"user": "bench", "tags": ["a", "b"]})
    service.post("/evaluations", json={"id": "other", "code": "x", "language": "go"})
    large = {"output": "line\n" * 40_000}  # to the file store: the record has a preview
    assert service.put("/evaluations/ceiling-7", json=large).status_code == 200
    running = {"status": "running", "executor_id": "e-1", "container_id": "c-1"}
    assert service.put("/evaluations/ceiling-9", json=running).status_code == 200

    expected = service.get(f"/evaluations?{QUERY}").json()
    answer = ceiling.get(f"/list?{QUERY}")

    assert answer.status_code == 200
    assert answer.json() == expected
    assert (expected["total"], len(expected["evaluations"]), expected["has_more"]) == (54, 50, True)
    truncated = [item["id"] for item in expected["evaluations"] if item["output_truncated"]]
    assert truncated == ["ceiling-7"]


def test_the_last_page_has_no_cursor(service: TestClient[Any], ceiling: TestClient[Any]) -> None:
    _create(service, 3)

    page = ceiling.get("/list?status=queued&language=python&limit=5").json()

    assert page == service.get("/evaluations?status=queued&language=python&limit=5").json()
    assert (page["total"], page["has_more"], page["next_cursor"]) == (3, False, None)
    assert ceiling.get("/list?status=failed&language=python").json()["evaluations"] == []


def test_the_large_update_stores_what_the_service_stores(
    service: TestClient[Any], ceiling: TestClient[Any], migrated_url: str, tmp_path: Path
) -> None:
    _create(service, 1)
    output = "step 1 loss=0.42\n" * 12_000

    answer = ceiling.put("/large/ceiling-0", content=msgspec.json.encode({"output": output}))

    assert answer.status_code == 200
    assert answer.json()["version"] == 2
    stored = tmp_path / "ceiling" / "evaluations" / "ceiling-0" / "output.txt.zst"
    assert zstandard.ZstdDecompressor().decompress(stored.read_bytes()).decode() == output
    assert [path.name for path in stored.parent.iterdir()] == [stored.name]  # no temp left
    # From the database: the service's cache still holds the record it created.
    record = asyncio.run(_stored(migrated_url, "ceiling-0"))
    assert record == {
        "version": 2,
        "output": output[:1000],
        "output_location": "file",
        "output_size": len(output),
        "output_compressed": True,
        "output_key": "evaluations/ceiling-0/output.txt.zst",
    }
    missing = ceiling.put("/large/nope", content=msgspec.json.encode({"output": "x"}))
    assert missing.status_code == 404
