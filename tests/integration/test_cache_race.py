"""Concurrent readers and writers through HTTP never see the cache go back in time.

Writers update one record while readers hammer it: a stale re-fill (a reader
putting back the version it loaded just before a writer's invalidation) would
show up as a writer reading less than it just wrote, a reader seeing a version
go backwards, or a final read that is not the last write.
"""

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from interfaces.http.app import create_app
from interfaces.settings import Settings
from tests.services import beneath_row_security, serve_in_thread

pytestmark = pytest.mark.anyio

EVAL = "eval_20240701_120000_cafe01"
WRITERS = 3
WRITES_EACH = 15
READERS = 4


@pytest.fixture
def server_url(backend_settings: Settings) -> Iterator[str]:
    with serve_in_thread(create_app(backend_settings)) as url:
        yield url


def version(response: Any) -> int:
    assert response.status_code == 200, response.text
    return int(response.headers["etag"].strip('W/"'))


async def test_no_stale_read_under_concurrent_writes(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=60) as client:
        created = await client.post("/evaluations", json={"id": EVAL, "code": "x"})
        assert created.status_code == 200, created.text
        writes_done = anyio.Event()
        seen: dict[str, list[int]] = {}

        async def writer(name: str) -> None:
            for count in range(1, WRITES_EACH + 1):
                written = await client.put(f"/evaluations/{EVAL}", json={"metadata": {name: count}})
                mine = version(written)
                assert written.json()["metadata"][name] == count
                # Read-your-writes: nothing older than this write may come back now.
                reread = await client.get(f"/evaluations/{EVAL}")
                assert version(reread) >= mine
                assert reread.json()["metadata"][name] >= count

        async def reader(name: str) -> None:
            versions = seen.setdefault(name, [])
            while not writes_done.is_set():
                versions.append(version(await client.get(f"/evaluations/{EVAL}")))
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as readers:
            for index in range(READERS):
                readers.start_soon(reader, f"reader-{index}")
            async with anyio.create_task_group() as writers:
                for index in range(WRITERS):
                    writers.start_soon(writer, f"w{index}")
            writes_done.set()

        final_version = 1 + WRITERS * WRITES_EACH
        for _ in range(3):
            final = await client.get(f"/evaluations/{EVAL}")
            assert version(final) == final_version
            assert final.json()["metadata"] == {f"w{i}": WRITES_EACH for i in range(WRITERS)}
        for versions in seen.values():
            assert versions == sorted(versions), "a reader saw a version go backwards"
        assert sum(len(versions) for versions in seen.values()) >= READERS


class RowLock:
    """Holds the database's write lock from outside the service, like a slow writer would.

    PostgreSQL: ``SELECT ... FOR UPDATE`` on the record; SQLite: ``BEGIN IMMEDIATE``.
    Reads are not blocked on either (MVCC, WAL), so readers run inside the window
    between a writer's cache tombstone and its commit.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._release: Any = None

    async def acquire(self) -> None:
        url = self.settings.database.url
        if self.settings.database.is_postgres:
            import asyncpg

            connection = await asyncpg.connect(
                beneath_row_security(url).replace("postgresql+asyncpg://", "postgresql://")
            )
            transaction = connection.transaction()
            await transaction.start()
            await connection.execute("SELECT 1 FROM evaluations WHERE id = $1 FOR UPDATE", EVAL)

            async def release_postgres() -> None:
                await transaction.rollback()
                await connection.close()

            self._release = release_postgres
            return
        import sqlite3

        path = url.split(":///", 1)[1]
        database = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        database.execute("BEGIN IMMEDIATE")

        async def release_sqlite() -> None:
            database.execute("ROLLBACK")
            database.close()

        self._release = release_sqlite

    async def release(self) -> None:
        await self._release()


async def test_a_reader_inside_the_write_window_cannot_refill_the_old_version(
    backend_settings: Settings, server_url: str
) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=60) as client:
        assert (await client.post("/evaluations", json={"id": EVAL, "code": "x"})).is_success
        assert version(await client.get(f"/evaluations/{EVAL}")) == 1  # cached at v1

        lock = RowLock(backend_settings)
        await lock.acquire()
        results: dict[str, Any] = {}

        async def write() -> None:
            results["put"] = await client.put(f"/evaluations/{EVAL}", json={"metadata": {"a": 1}})

        async with anyio.create_task_group() as group:
            group.start_soon(write)
            await anyio.sleep(0.5)  # the writer has laid its tombstone and waits on the lock
            assert "put" not in results, results["put"].text
            for _ in range(5):
                # Misses (tombstone), reads v1 from the database, tries to re-fill it.
                assert version(await client.get(f"/evaluations/{EVAL}")) == 1
            await lock.release()

        assert version(results["put"]) == 2
        for _ in range(3):
            after = await client.get(f"/evaluations/{EVAL}")
            assert version(after) == 2, "the cache served the version from before the write"
            assert after.json()["metadata"] == {"a": 1}
