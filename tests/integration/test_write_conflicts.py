"""A write PostgreSQL ends to break a deadlock is tried again, and its caller never sees it.

PostgreSQL only: SQLite and the file backend take one writer at a time, so no deadlock can
happen there. The test makes one happen for a Celery update as the platform's worker sends
it (``STARTED``). A transaction of the test's own holds the counter rows the update's
trigger needs next; once the update waits on them, the test asks for the record's row,
which the update holds. PostgreSQL ends the update's transaction (the test's own waits 60 s
before it looks for a deadlock, the service's the default second), the service tries it
again, and the worker gets its 200 once the test commits.
"""

from typing import Any

import anyio
import anyio.to_thread
import asyncpg
import pytest
from sqlalchemy.engine import make_url

from infrastructure.postgres.pool import driver_dsn
from interfaces.settings import Settings
from migrations.counters import SHARDS
from tests.integration.conftest import ClientFactory, configured
from tests.services import TEST_DATABASE_URL, as_role

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def postgres_settings(tmp_path: Any) -> Any:
    yield from configured("postgres+redis", tmp_path)


@pytest.fixture
def backend_settings(postgres_settings: Settings) -> Settings:
    """The HTTP suite's ``make_client`` on PostgreSQL + Redis only (see the module)."""
    return postgres_settings


HOLD_RUNNING_COUNTERS = (
    "SELECT 1 FROM evaluation_counters WHERE tenant_id = 'default' AND status = 'running' "
    "AND language = 'python' FOR UPDATE"
)


async def _waiting_on_a_lock(connection: asyncpg.Connection) -> int:
    """The pid of the service's backend once it waits on a lock in this database."""
    for _ in range(1000):
        pid = await connection.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        if pid is not None:
            return int(pid)
        await anyio.sleep(0.01)
    raise AssertionError("the update never waited on the held counter rows")


@pytest.mark.alone("holds the tenant's counter rows: a neighbour's writes would wait on them")
def test_a_celery_update_ended_by_a_deadlock_is_tried_again(
    make_client: ClientFactory, backend_settings: Settings
) -> None:
    client = make_client()
    created = client.post("/evaluations", json={"code": "print(1)", "language": "python"})
    assert created.status_code == 200, created.text
    evaluation_id = created.json()["id"]
    superuser = make_url(TEST_DATABASE_URL).username or "postgres"
    dsn = driver_dsn(as_role(backend_settings.database.url, superuser))

    async def run() -> Any:
        holder = await asyncpg.connect(dsn)
        try:
            await holder.execute(
                "INSERT INTO evaluation_counters (tenant_id, status, language, shard) "
                "SELECT 'default', 'running', 'python', shard FROM generate_series(0, $1) "
                "AS shard ON CONFLICT DO NOTHING",
                SHARDS - 1,
            )
            answer: dict[str, Any] = {}

            async def update() -> None:
                answer["it"] = await anyio.to_thread.run_sync(
                    lambda: client.post(
                        f"/evaluations/{evaluation_id}/celery-update",
                        json={"task_state": "STARTED", "celery_task_id": "celery-1"},
                    )
                )

            async with anyio.create_task_group() as group, holder.transaction():
                await holder.execute("SET LOCAL deadlock_timeout = '60s'")
                await holder.execute(HOLD_RUNNING_COUNTERS)
                group.start_soon(update)
                await _waiting_on_a_lock(holder)
                # Granted only once the update's transaction let the row go: PostgreSQL
                # ended it, since it could not commit without the rows held here.
                with anyio.fail_after(30):
                    await holder.execute(
                        "SELECT 1 FROM evaluations WHERE id = $1 FOR UPDATE", evaluation_id
                    )
                assert "it" not in answer, "the update answered while its rows were held"
            return answer["it"]
        finally:
            await holder.close()

    answer = anyio.run(run)

    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] is True
    assert answer.json()["evaluation"]["status"] == "running"
    stored = client.get(f"/evaluations/{evaluation_id}").json()
    assert (stored["status"], stored["celery_task_id"]) == ("running", "celery-1")
    audited = client.get("/audit", params={"evaluation_id": evaluation_id}).json()
    actions = [item["action"] for item in audited["items"]]
    assert actions.count("celery_update") == 1, actions  # the ended attempt wrote nothing
