"""PostgreSQL out of connections: the service answers as in an outage, and says why.

Each test runs the real service (``storage-service serve``) on a PostgreSQL of its own
with a tiny ``max_connections``. The test then takes every slot itself with raw asyncpg
connections, ending the service's own sessions (``pg_terminate_backend``) until the
server holds none of them, so every connection the service asks for from then on is
refused with SQLSTATE 53300, "sorry, too many clients already". In the same way, with a
pool of one connection held by a request that waits on a lock, the next request waits
for the pool past ``DB_CONNECT_TIMEOUT_S``. Checked over HTTP, and then in PostgreSQL:

- a: writes are journaled (a create 200 with its record, writes to a record the service
  cannot see 202), reads come from the cache or the journal, a read that needs the
  database is a 503 problem+json with ``Retry-After`` and ``cause: connection-slots``,
  ``/health`` is ``degraded`` naming the refusal; once the slots are free the journal is
  replayed and PostgreSQL holds every acknowledged write;
- b: with ``FALLBACK_BACKEND=none`` reads and writes are 503 naming the cause,
  ``/health`` is 503 ``unavailable``, and nothing of a refused write is stored;
- c: the pool's one connection in use past the timeout: ``cause: connection-pool``.

No answer is ever a 500.
"""

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from crucible_storage import StorageClient, Unavailable

from tests.e2e.harness import HTTP_TIMEOUT_S, connect, service_env, tail, wait_drained
from tests.pg_server import PgServer, throwaway_postgres, wait_until
from tests.services import start_server, stop_process

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

# Few slots, so the test can take them all (superusers may use the reserved ones too).
MAX_CONNECTIONS = "8"
SERVICE_BACKENDS = (
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'crucible-storage-service'"
)
PROBLEM = "application/problem+json"


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PgServer]:
    with throwaway_postgres(tmp_path, {"max_connections": MAX_CONNECTIONS}) as server:
        yield server


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for the test's own connections, which outlive a single ``run``."""
    with asyncio.Runner() as loop:
        yield loop


class SlotHog:
    """Holds every connection slot of the server, none left to the service."""

    def __init__(self, runner: asyncio.Runner, dsn: str) -> None:
        self.runner = runner
        self.dsn = dsn
        self.held: list[asyncpg.Connection] = []

    async def _fill(self) -> None:
        while True:
            try:
                self.held.append(await asyncpg.connect(self.dsn, timeout=10))
            except asyncpg.TooManyConnectionsError:
                return

    async def _take_all(self) -> None:
        await self._fill()
        assert self.held, "the server had no slot free to begin with"
        while True:  # the service's sessions end; their slots are ours before it reconnects
            pids = [row["pid"] for row in await self.held[0].fetch(SERVICE_BACKENDS)]
            if not pids:
                return
            for pid in pids:
                await self.held[0].execute("SELECT pg_terminate_backend($1, 10000)", pid)
            await self._fill()

    def take_all(self) -> None:
        self.runner.run(self._take_all())
        with pytest.raises(asyncpg.TooManyConnectionsError, match="too many clients"):
            self.runner.run(asyncpg.connect(self.dsn, timeout=10))

    def release(self) -> None:
        async def close() -> None:
            for connection in self.held:
                await connection.close()

        self.runner.run(close())
        self.held.clear()


def assert_refused_for(response: httpx.Response, cause: str, what: str) -> dict[str, Any]:
    """A 503 problem+json that names ``cause`` and asks for a retry."""
    assert response.status_code == 503, (what, response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(PROBLEM), (what, response.headers)
    assert response.headers.get("retry-after") == "1", (what, response.headers)
    body = response.json()
    assert body["type"].endswith("/unavailable"), (what, body)
    assert body["backend"] == "database", (what, body)
    assert body["cause"] == cause, (what, body)
    assert "nothing was stored" in body["detail"], (what, body)
    return dict(body)


def assert_journaled_202(response: httpx.Response, evaluation_id: str) -> None:
    assert response.status_code == 202, (evaluation_id, response.status_code, response.text)
    body = response.json()
    assert body["evaluation_id"] == evaluation_id and body["journal_entry"], body


def create(http: httpx.Client, evaluation_id: str) -> dict[str, Any]:
    response = http.post(
        "/evaluations", json={"id": evaluation_id, "code": f"print('{evaluation_id}')"}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def primary_rows(dsn: str) -> tuple[dict[str, str], dict[str, str]]:
    """Each evaluation's status and its log, as PostgreSQL holds them."""
    connection = await connect(dsn)
    try:
        statuses = await connection.fetch("SELECT id, status FROM evaluations")
        logs = await connection.fetch(
            "SELECT evaluation_id, string_agg(content, '' ORDER BY start_offset) AS log"
            " FROM log_chunks GROUP BY evaluation_id"
        )
    finally:
        await connection.close()
    return (
        {row["id"]: row["status"] for row in statuses},
        {row["evaluation_id"]: row["log"] for row in logs},
    )


def test_writes_are_journaled_and_reads_name_the_refusal_until_slots_free(
    tmp_path: Path, pg: PgServer, runner: asyncio.Runner
) -> None:
    env = service_env(pg, tmp_path / "files")
    first, base = start_server(env, tmp_path / "first.log")
    try:
        with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as http:
            cached, unseen = create(http, "slots-cached"), create(http, "slots-unseen")
    finally:
        stop_process(first, 20)
    # A new process: its cache is empty, its pools hold no connection yet.
    log = tmp_path / "server.log"
    process, base = start_server(env, log)
    hog = SlotHog(runner, pg.dsn)
    try:
        with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as http:
            assert http.get("/evaluations/slots-cached").json() == cached  # now in the cache
            hog.take_all()

            health = http.get("/health")
            assert health.status_code == 200, health.text
            report = health.json()
            assert report["status"] == "degraded", report
            database = report["backends"]["database"]
            assert database["status"] == "unavailable", report
            assert "TooManyConnectionsError: sorry, too many clients already" in database["error"]

            # Reads: the cache serves what it holds; what needs the database is refused.
            assert http.get("/evaluations/slots-cached").json() == cached
            for path in ["/evaluations/slots-unseen", "/evaluations", "/statistics"]:
                body = assert_refused_for(http.get(path), "connection-slots", path)
                assert "connection slots (max_connections) are in use" in body["detail"], body

            # Writes: journaled, answered as in an outage.
            created = http.post("/evaluations", json={"id": "slots-new", "code": "print(2)"})
            assert created.status_code == 200, created.text
            assert http.get("/evaluations/slots-new").json() == created.json()
            running = http.put("/evaluations/slots-cached", json={"status": "running"})
            assert running.status_code == 200, running.text
            assert running.json()["status"] == "running"
            assert_journaled_202(
                http.put("/evaluations/slots-unseen", json={"status": "running"}), "slots-unseen"
            )
            assert_journaled_202(
                http.post("/evaluations/slots-unseen/logs", json={"content": "kept\n"}),
                "slots-unseen",
            )
            keyed = http.post(
                "/evaluations",
                json={"id": "slots-keyed", "code": "print(3)"},
                headers={"Idempotency-Key": "slots-keyed-1"},
            )
            assert keyed.status_code == 200, keyed.text

            during = http.get("/health").json()
            assert during["status"] == "degraded" and during["pending_replay"] == 5, during
            assert http.get("/evaluations/slots-unseen").status_code == 503  # still refused

            hog.release()
            wait_drained(base, log)

            # Reads come back from the database, with the journaled writes in it.
            unseen_now = http.get("/evaluations/slots-unseen")
            assert unseen_now.status_code == 200, unseen_now.text
            assert unseen_now.json()["status"] == "running"
            assert unseen_now.json()["created_at"] == unseen["created_at"]
            listed = http.get("/evaluations", params={"limit": 10})
            assert listed.status_code == 200, listed.text
            assert {item["id"] for item in listed.json()["evaluations"]} == {
                "slots-cached",
                "slots-unseen",
                "slots-new",
                "slots-keyed",
            }
            retried = http.post(
                "/evaluations",
                json={"id": "slots-keyed", "code": "print(3)"},
                headers={"Idempotency-Key": "slots-keyed-1"},
            )
            assert retried.status_code == 200 and retried.json() == keyed.json(), retried.text
    finally:
        hog.release()
        stop_process(process, 20)
    statuses, logs = runner.run(primary_rows(pg.dsn))
    assert statuses == {
        "slots-cached": "running",
        "slots-unseen": "running",
        "slots-new": "queued",
        "slots-keyed": "queued",
    }, tail(log)
    assert logs == {"slots-unseen": "kept\n"}, tail(log)


def test_without_a_fallback_every_refused_request_is_a_503_naming_the_cause(
    tmp_path: Path, pg: PgServer, runner: asyncio.Runner
) -> None:
    env = {**service_env(pg, tmp_path / "files"), "FALLBACK_BACKEND": "none"}
    log = tmp_path / "server.log"
    process, base = start_server(env, log)
    hog = SlotHog(runner, pg.dsn)
    try:
        with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as http:
            create(http, "slots-old")
            hog.take_all()

            health = http.get("/health")
            assert health.status_code == 503, health.text
            assert health.json()["status"] == "unavailable", health.text
            assert "too many clients" in health.json()["backends"]["database"]["error"]
            requests = [
                ("POST", "/evaluations", {"id": "slots-refused", "code": "x"}),
                ("PUT", "/evaluations/slots-unknown", {"status": "running"}),
                ("POST", "/evaluations/slots-unknown/logs", {"content": "lost?\n"}),
                ("GET", "/evaluations/slots-unknown", None),
                ("GET", "/evaluations", None),
            ]
            for method, path, body in requests:
                response = http.request(method, path, json=body)
                assert_refused_for(response, "connection-slots", f"{method} {path}")
            with (
                StorageClient(base, retries=0) as client,
                pytest.raises(Unavailable) as refused,
            ):
                client.evaluations.get("slots-unknown")
            assert (refused.value.backend, refused.value.cause) == ("database", "connection-slots")

            hog.release()
            assert wait_until(lambda: http.get("/evaluations/slots-old").status_code == 200, 30)
            assert http.get("/evaluations/slots-refused").status_code == 404
    finally:
        hog.release()
        stop_process(process, 20)
    statuses, logs = runner.run(primary_rows(pg.dsn))
    assert statuses == {"slots-old": "queued"} and logs == {}, tail(log)


def test_a_pool_busy_past_the_timeout_is_named_too(
    tmp_path: Path, pg: PgServer, runner: asyncio.Runner
) -> None:
    env = {**service_env(pg, tmp_path / "files"), "DB_POOL_SIZE": "1"}
    first, base = start_server(env, tmp_path / "first.log")
    try:
        with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as http:
            create(http, "pool-blocked")
    finally:
        stop_process(first, 20)
    log = tmp_path / "server.log"
    process, base = start_server(env, log)
    locker = runner.run(connect(pg.dsn))
    blocked: list[httpx.Response] = []
    try:
        # The pool's one connection waits on a lock this test holds, in a read of a record
        # the new process has not cached.
        runner.run(locker.execute("BEGIN; LOCK TABLE evaluations IN ACCESS EXCLUSIVE MODE"))
        reader = threading.Thread(
            target=lambda: blocked.append(
                httpx.get(f"{base}/evaluations/pool-blocked", timeout=HTTP_TIMEOUT_S)
            )
        )
        reader.start()

        def waiting() -> bool:
            query = SERVICE_BACKENDS + " AND wait_event_type = 'Lock'"
            return bool(runner.run(locker.fetch(query)))

        assert wait_until(waiting, 20), tail(log)
        with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as http:
            body = assert_refused_for(http.get("/evaluations"), "connection-pool", "list")
            assert "database pool (DB_POOL_SIZE)" in body["detail"], body
            created = http.post("/evaluations", json={"id": "pool-new", "code": "print(1)"})
            assert created.status_code == 200, created.text  # journaled
            report = http.get("/health").json()
            assert report["status"] == "degraded", report
            database = report["backends"]["database"]  # its own probe's connection is open
            assert database["status"] == "degraded", report
            assert database["error"].startswith("connection-pool: a request got no connection")

            runner.run(locker.execute("ROLLBACK"))
            reader.join(timeout=HTTP_TIMEOUT_S)
            assert blocked and blocked[0].status_code == 200, blocked
            wait_drained(base, log)
            assert http.get("/evaluations/pool-new").json()["status"] == "queued"
    finally:
        runner.run(locker.close())
        stop_process(process, 20)
    statuses, _ = runner.run(primary_rows(pg.dsn))
    assert statuses == {"pool-blocked": "queued", "pool-new": "queued"}, tail(log)
