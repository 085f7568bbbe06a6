"""On PostgreSQL + Redis, the data is where the docs say: rows in PostgreSQL, keys in Redis."""

import asyncio
import contextlib
import json
import threading
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
from litestar.testing import TestClient
from sqlalchemy.engine import make_url

from interfaces.http.app import create_app
from interfaces.settings import Settings, load_settings
from tests.services import TEST_REDIS_URL, migrated_postgres_database, redis_test_keys

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

EVAL = "eval_20240701_120000_abc123"


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    with redis_test_keys() as prefix, migrated_postgres_database() as url:
        yield load_settings(
            {},
            database={"url": url},
            storage={"file_storage_path": tmp_path / "files"},
            redis={"url": TEST_REDIS_URL, "key_prefix": prefix},
        )


def rows(settings: Settings, query: str, *args: Any) -> list[Any]:
    dsn = settings.database.url.replace("postgresql+asyncpg://", "postgresql://")

    async def fetch() -> list[Any]:
        connection = await asyncpg.connect(dsn)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    return asyncio.run(fetch())


def test_rows_in_postgresql_and_keys_in_redis(settings: Settings) -> None:
    keys = redis.Redis.from_url(TEST_REDIS_URL)
    prefix = settings.redis.key_prefix
    with TestClient(create_app(settings)) as client:
        created = client.post("/evaluations", json={"id": EVAL, "code": "print(1)"})
        assert created.status_code == 200, created.text
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
        entry = json.loads(keys.get(f"{prefix}eval:{EVAL}:running") or b"{}")
        assert (entry["container_id"], entry["executor_id"]) == ("c-1", "exec-1")
        tail = keys.hgetall(f"{prefix}logs:{{{EVAL}}}:latest")
        assert (tail[b"s"], tail[b"e"], tail[b"d"]) == (b"0", b"8", b"one\ntwo\n")
        assert 0 < keys.ttl(f"{prefix}logs:{{{EVAL}}}:latest") <= settings.cache.ttl

        done = client.put(f"/evaluations/{EVAL}", json={"status": "completed"})
        assert done.status_code == 200, done.text

        assert not keys.exists(f"{prefix}logs:{{{EVAL}}}:latest")
        assert not keys.sismember(f"{prefix}running_evaluations", EVAL)
        assert not keys.exists(f"{prefix}eval:{EVAL}:running")
        assert client.get(f"/evaluations/{EVAL}/logs").json()["content"] == "one\ntwo\n"
    keys.close()


def test_a_running_log_is_tailed_from_redis(settings: Settings) -> None:
    """While running, GET logs answers from ``logs:{<id>}:latest``, not the database."""
    keys = redis.Redis.from_url(TEST_REDIS_URL)
    tail_key = f"{settings.redis.key_prefix}logs:{{{EVAL}}}:latest"
    with TestClient(create_app(settings)) as client:
        client.post("/evaluations", json={"id": EVAL, "code": "x", "status": "running"})
        client.post(f"/evaluations/{EVAL}/logs", json={"content": "from the database\n"})
        # Rewrite the tail's bytes (same length) to see which copy answers.
        keys.hset(tail_key, "d", b"from redis (tail)\n")

        tailed = client.get(f"/evaluations/{EVAL}/logs", params={"offset": 5})
        assert tailed.json()["content"] == "redis (tail)\n"
        assert tailed.json()["source"] == "redis_cache"

        keys.delete(tail_key)
        whole = client.get(f"/evaluations/{EVAL}/logs").json()
        assert (whole["content"], whole["source"]) == ("from the database\n", "database")
    keys.close()


def connections_of_the_service(settings: Settings) -> int:
    database = settings.database.url.rsplit("/", 1)[1]
    [row] = rows(
        settings,
        "SELECT count(*) AS n FROM pg_stat_activity "
        "WHERE datname = $1 AND application_name = 'crucible-storage-service'",
        database,
    )
    return int(row["n"])


def test_both_pools_close_on_shutdown(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        client.post("/evaluations", json={"id": EVAL, "code": "x"})  # asyncpg pool
        assert client.get("/evaluations").is_success  # SQLAlchemy pool
        assert connections_of_the_service(settings) >= 2
    assert connections_of_the_service(settings) == 0


def test_the_statement_timeout_comes_from_settings(settings: Settings) -> None:
    """A write stuck behind a lock ends at DB_STATEMENT_TIMEOUT_MS, not a hang: it goes to
    the failover journal, is read back at once, and reaches PostgreSQL when the lock goes."""
    import time

    dsn = settings.database.url.replace("postgresql+asyncpg://", "postgresql://")
    quick = settings.changed(database={"statement_timeout_ms": 300})
    with TestClient(create_app(quick)) as client:
        assert client.post("/evaluations", json={"id": EVAL, "code": "x"}).is_success

        async def hold_lock_and_write() -> tuple[int, float]:
            locker = await asyncpg.connect(dsn)
            try:
                async with locker.transaction():
                    await locker.execute("SELECT 1 FROM evaluations WHERE id = $1 FOR UPDATE", EVAL)
                    began = time.monotonic()
                    response = await asyncio.to_thread(
                        client.put, f"/evaluations/{EVAL}", json={"metadata": {"a": 1}}
                    )
                    return response.status_code, time.monotonic() - began
            finally:
                await locker.close()

        status, took = asyncio.run(hold_lock_and_write())
        assert status == 200
        assert took < 5, f"the write waited {took:.1f}s"
        assert client.get(f"/evaluations/{EVAL}").json()["metadata"] == {"a": 1}
        deadline = time.monotonic() + 20
        while client.get("/health").json()["pending_replay"] and time.monotonic() < deadline:
            time.sleep(0.1)

        async def stored_metadata() -> Any:
            connection = await asyncpg.connect(dsn)
            try:
                return await connection.fetchval(
                    "SELECT metadata FROM evaluations WHERE id = $1", EVAL
                )
            finally:
                await connection.close()

        assert json.loads(asyncio.run(stored_metadata())) == {"a": 1}


class SeveringProxy:
    """A TCP proxy to PostgreSQL that can silently sever every connection open so far.

    A severed connection stays open on the client's side until the client sends
    something, which is then answered with a reset: what a connection that a
    failover, NAT timeout or server restart dropped while idle looks like.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._open: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._severed: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    def __enter__(self) -> "SeveringProxy":
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None and self._server is not None
        self._loop.call_soon_threadsafe(self._server.close)
        self._thread.join(10)

    def sever_all(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(lambda: self._severed.update(c for c, _ in self._open))

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._server.serve_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._open.append((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, client: bool) -> None:
            while data := await src.read(65536):
                if client and writer in self._severed:
                    writer.transport.abort()
                    up_writer.transport.abort()
                    return
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(
            pipe(reader, up_writer, True), pipe(up_reader, writer, False), return_exceptions=True
        )


def test_connections_dropped_while_idle_are_replaced_without_an_error(
    settings: Settings,
) -> None:
    """Both pools survive connections that died unnoticed: no request fails."""
    url = make_url(settings.database.url)
    with SeveringProxy(url.port or 5432) as proxy:
        proxied = settings.changed(
            database={"url": url.set(port=proxy.port).render_as_string(hide_password=False)}
        )
        with TestClient(create_app(proxied)) as client:
            assert client.post("/evaluations", json={"id": EVAL, "code": "x"}).is_success
            assert client.get("/evaluations").is_success

            proxy.sever_all()

            update = client.put(f"/evaluations/{EVAL}", json={"metadata": {"n": 1}})
            assert update.status_code == 200, update.text  # asyncpg: retried on a new connection
            listed = client.get("/evaluations")  # SQLAlchemy: pre-ping replaced it
            assert listed.status_code == 200, listed.text
            assert listed.json()["evaluations"][0]["metadata"] == {"n": 1}


def test_slow_uploads_and_downloads_hold_no_database_connection(settings: Settings) -> None:
    """With a pool of one, a stalled upload must not starve every other request."""
    import socket

    from tests.services import serve_in_thread

    one = settings.changed(database={"pool_size": 1, "connect_timeout_s": 2.0})
    with serve_in_thread(create_app(one)) as url:
        host, port = url.removeprefix("http://").split(":")
        import httpx

        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.post("/evaluations", json={"id": EVAL, "code": "x"}).is_success
            stalled = []
            for _ in range(2):
                sock = socket.create_connection((host, int(port)))
                sock.sendall(
                    f"PUT /evaluations/{EVAL}/output HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n".encode()
                    + b"partial body"
                )
                stalled.append(sock)
            try:
                for line in ("one\n", "two\n"):
                    appended = client.post(f"/evaluations/{EVAL}/logs", json={"content": line})
                    assert appended.status_code == 200, appended.text
                assert client.get(f"/evaluations/{EVAL}").is_success
            finally:
                for sock in stalled:
                    sock.close()
