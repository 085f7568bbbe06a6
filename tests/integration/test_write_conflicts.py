"""Writes PostgreSQL ends to break a deadlock: tried again inside, or answered so that the
caller's retry runs them.

PostgreSQL only: SQLite and the file backend take one writer at a time, so no deadlock can
happen there. Each test makes one happen for a request built as the platform builds it. A
transaction of the test's own holds the counter rows the request's trigger needs; once the
request waits on them, the test asks for a row the request holds. PostgreSQL ends the
request's transaction: a backend looks for a deadlock once, ``deadlock_timeout`` after it
began to wait, and the service's role waits 5 s in this database (the test's own 60 s), so
the request's look comes after the cycle closed even on a busy machine. The test's
transaction then ends, and the request goes on.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from infrastructure.postgres.pool import driver_dsn
from interfaces.settings import Settings
from migrations.counters import SHARDS
from tests.integration.conftest import ClientFactory, configured
from tests.pg_locks import until_waiting
from tests.services import beneath_row_security

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.alone("holds the tenant's counter rows: a neighbour's writes would wait on them"),
]

STATUSES = ("queued", "running")
HOLD_THE_COUNTERS = (
    "SELECT 1 FROM evaluation_counters WHERE tenant_id = 'default' AND language = 'python' "
    "FOR UPDATE"
)


SERVICE_DEADLOCK_TIMEOUT = "5s"


@pytest.fixture
def backend_settings(tmp_path: Path) -> Iterator[Settings]:
    """The HTTP suite's ``make_client`` on PostgreSQL + Redis only (see the module), the
    service's role looking for deadlocks ``SERVICE_DEADLOCK_TIMEOUT`` after it waits."""
    for settings in configured("postgres+redis", tmp_path):
        anyio.run(_look_later, settings)
        yield settings


async def _look_later(settings: Settings) -> None:
    service = make_url(settings.database.url)
    connection = await asyncpg.connect(driver_dsn(beneath_row_security(settings.database.url)))
    try:
        await connection.execute(
            f'ALTER ROLE "{service.username}" IN DATABASE "{service.database}" '
            f"SET deadlock_timeout = '{SERVICE_DEADLOCK_TIMEOUT}'"
        )
    finally:
        await connection.close()


def _ended_once(
    settings: Settings, send: Callable[[], httpx.Response], then: str, *arguments: Any
) -> httpx.Response:
    """``send()``'s answer, its first transaction made a deadlock's victim: the counter rows
    held while it runs, then ``then`` (a statement waiting on a row it holds) asked."""

    async def run() -> httpx.Response:
        holder = await asyncpg.connect(driver_dsn(beneath_row_security(settings.database.url)))
        answer: list[httpx.Response] = []

        async def request() -> None:
            answer.append(await anyio.to_thread.run_sync(send))

        try:
            await holder.execute(
                "INSERT INTO evaluation_counters (tenant_id, status, language, shard) "
                "SELECT 'default', status, 'python', shard FROM unnest($1::text[]) AS status, "
                "generate_series(0, $2) AS shard ON CONFLICT DO NOTHING",
                list(STATUSES),
                SHARDS - 1,
            )
            async with anyio.create_task_group() as group:
                held = holder.transaction()
                await held.start()
                await holder.execute("SET LOCAL deadlock_timeout = '60s'")
                await holder.execute(HOLD_THE_COUNTERS)
                group.start_soon(request)
                await until_waiting(holder)
                # Granted only once the request's transaction let its row go: PostgreSQL
                # ended it, since it could not commit without the rows held here.
                with anyio.fail_after(30):
                    await holder.execute(then, *arguments)
                await held.rollback()
        finally:
            await holder.close()
        return answer[0]

    return anyio.run(run)


def test_a_celery_update_ended_by_a_deadlock_is_tried_again(
    make_client: ClientFactory, backend_settings: Settings
) -> None:
    """Inside the service: the worker gets its 200, and one audit entry."""
    client = make_client()
    created = client.post("/evaluations", json={"code": "print(1)", "language": "python"})
    assert created.status_code == 200, created.text
    evaluation_id = created.json()["id"]

    answer = _ended_once(
        backend_settings,
        lambda: client.post(
            f"/evaluations/{evaluation_id}/celery-update",
            json={"task_state": "STARTED", "celery_task_id": "celery-1"},
        ),
        "SELECT 1 FROM evaluations WHERE id = $1 FOR UPDATE",
        evaluation_id,
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] is True
    assert answer.json()["evaluation"]["status"] == "running"
    stored = client.get(f"/evaluations/{evaluation_id}").json()
    assert (stored["status"], stored["celery_task_id"]) == ("running", "celery-1")
    audited = client.get("/audit", params={"evaluation_id": evaluation_id}).json()
    actions = [item["action"] for item in audited["items"]]
    assert actions.count("celery_update") == 1, actions  # the ended attempt wrote nothing


def test_a_create_ended_by_a_deadlock_is_a_503_its_keyed_retry_runs(
    make_client: ClientFactory, backend_settings: Settings
) -> None:
    """A create is not tried again inside: its 503 names the cause and asks for the same
    write, and the retry with the same ``Idempotency-Key`` (as every client sends it) runs
    it, since a 5xx is never kept for the key."""
    client = make_client()
    body = {"id": "ended-create", "code": "print(1)", "language": "python"}
    key = {"Idempotency-Key": "0d5e6c1a-0000-4000-8000-00000000dead"}

    answer = _ended_once(
        backend_settings,
        lambda: client.post("/evaluations", json=body, headers=key),
        "INSERT INTO evaluations (tenant_id, id, code, status) "
        "VALUES ('default', $1, 'x', 'queued')",
        body["id"],
    )

    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    problem = answer.json()
    assert (problem["backend"], problem["cause"]) == ("database", "write-conflict")
    assert "nothing was stored" in problem["detail"]
    assert client.get(f"/evaluations/{body['id']}").status_code == 404
    again = client.post("/evaluations", json=body, headers=key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == body["id"]
    assert client.get(f"/evaluations/{body['id']}").json()["code"] == "print(1)"
