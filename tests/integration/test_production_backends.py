"""On PostgreSQL + Redis, the data is where the docs say: rows in PostgreSQL, keys in Redis."""

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.settings import Settings, load_settings
from tests.services import (
    TEST_REDIS_URL,
    drop_redis_keys,
    redis_test_prefix,
    temporary_postgres_database,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

EVAL = "eval_20240701_120000_abc123"


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    from infrastructure.sql.migrate import upgrade

    prefix = redis_test_prefix()
    with temporary_postgres_database() as url:
        upgrade(url)
        yield load_settings(
            {},
            database_url=url,
            file_storage_path=tmp_path / "files",
            redis_url=TEST_REDIS_URL,
            redis_key_prefix=prefix,
        )
    asyncio.run(drop_redis_keys(prefix))


def rows(settings: Settings, query: str, *args: Any) -> list[Any]:
    dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")

    async def fetch() -> list[Any]:
        connection = await asyncpg.connect(dsn)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    return asyncio.run(fetch())


def test_rows_in_postgresql_and_keys_in_redis(settings: Settings) -> None:
    keys = redis.Redis.from_url(TEST_REDIS_URL)
    prefix = settings.redis_key_prefix
    with TestClient(create_app(settings)) as client:
        created = client.post("/evaluations", json={"id": EVAL, "code": "print(1)"})
        assert created.status_code == 201, created.text
        running = client.put(
            f"/evaluations/{EVAL}",
            json={"status": "running", "executor_id": "exec-1", "container_id": "c-1"},
        )
        assert running.status_code == 200, running.text
        for line in ("one\n", "two\n"):
            assert client.post(f"/evaluations/{EVAL}/logs", json={"content": line}).is_success
        assert client.post(f"/evaluations/{EVAL}/events", json={"event_type": "x"}).is_success
        assert client.get(f"/evaluations/{EVAL}").json()["status"] == "running"

        [row] = rows(settings, "SELECT status, executor_id, log_size FROM evaluations")
        assert (row["status"], row["executor_id"], row["log_size"]) == ("running", "exec-1", 8)
        chunks = rows(settings, "SELECT content FROM log_chunks ORDER BY start_offset")
        assert [chunk["content"] for chunk in chunks] == ["one\n", "two\n"]
        assert len(rows(settings, "SELECT 1 FROM evaluation_events")) == 1

        record = keys.hgetall(f"{prefix}eval:{{{EVAL}}}")
        assert b'"status":"running"' in record[b"d"]
        assert keys.sismember(f"{prefix}running_evaluations", EVAL)
        assert keys.hget(f"{prefix}eval:{{{EVAL}}}:running", "container_id") == b"c-1"
        tail = keys.hgetall(f"{prefix}logs:{{{EVAL}}}:latest")
        assert (tail[b"s"], tail[b"e"], tail[b"d"]) == (b"0", b"8", b"one\ntwo\n")
        assert 0 < keys.ttl(f"{prefix}logs:{{{EVAL}}}:latest") <= settings.cache_ttl

        done = client.put(f"/evaluations/{EVAL}", json={"status": "completed"})
        assert done.status_code == 200, done.text

        assert not keys.exists(f"{prefix}logs:{{{EVAL}}}:latest")
        assert not keys.sismember(f"{prefix}running_evaluations", EVAL)
        assert not keys.exists(f"{prefix}eval:{{{EVAL}}}:running")
        assert client.get(f"/evaluations/{EVAL}/logs").json()["content"] == "one\ntwo\n"
    keys.close()


def test_a_running_log_is_tailed_from_redis(settings: Settings) -> None:
    """While running, GET logs answers from ``logs:{<id>}:latest``, not the database."""
    keys = redis.Redis.from_url(TEST_REDIS_URL)
    tail_key = f"{settings.redis_key_prefix}logs:{{{EVAL}}}:latest"
    with TestClient(create_app(settings)) as client:
        client.post("/evaluations", json={"id": EVAL, "code": "x", "status": "running"})
        client.post(f"/evaluations/{EVAL}/logs", json={"content": "from the database\n"})
        # Rewrite the tail's bytes (same length) to see which copy answers.
        keys.hset(tail_key, "d", b"from redis (tail)\n")

        tailed = client.get(f"/evaluations/{EVAL}/logs", params={"offset": 5})
        assert tailed.json()["content"] == "redis (tail)\n"

        keys.delete(tail_key)
        assert client.get(f"/evaluations/{EVAL}/logs").json()["content"] == "from the database\n"
    keys.close()
