"""What the SQL layer costs on the hot paths, against raw asyncpg, on PostgreSQL.

Each hot path (create, get by id, update, append log, append event) runs in four
ways, interleaved in rounds so that a noisy neighbour hurts them all alike:

- ``session``: the SQLAlchemy adapters (Core statements on an ``AsyncSession``, what
  SQLite uses) plus the unit of work's commit, exactly as a request runs them;
- ``connection``: the same Core statements on an ``AsyncConnection`` (no session);
- ``service``: the PostgreSQL adapters the service runs (``infrastructure.postgres``:
  one pooled asyncpg connection per request scope, acquired and released each time);
- ``asyncpg``: hand-written SQL on one bare asyncpg connection, in a transaction:
  the floor.

Run: ``.venv/bin/python -m benchmarks.sql_hot_paths [--ops 2000] [--rounds 5]``
(needs PostgreSQL at BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres).
It creates a throwaway database and drops it at the end. Reports the best round's
mean microseconds per operation and the ratio to asyncpg.
"""

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from benchmarks.support import DEFAULT_URL, throwaway_database
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from domain.timeline import EvaluationEvent
from infrastructure.postgres.evaluations import PgEvaluationRepository
from infrastructure.postgres.pool import create_pool
from infrastructure.postgres.timeline import (
    INSERT_CHUNK,
    INSERT_EVENT,
    RESERVE_LOG,
    PgEventLog,
    PgLogStore,
)
from infrastructure.postgres.transaction import PgTransaction
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.evaluation_repository import SqlEvaluationRepository
from infrastructure.sql.migrate import upgrade_engine
from infrastructure.sql.rows import evaluation_values
from infrastructure.sql.tables import evaluation_events, evaluations, log_chunks
from infrastructure.sql.tenancy import bind_tenant
from infrastructure.sql.timeline import SqlEventLog, SqlLogStore
from interfaces.settings import DatabaseSettings

Operation = Callable[[int], Awaitable[None]]

CODE = "import math\nprint(sum(math.sqrt(i) for i in range(1000)))\n"
LOG_LINE = "step 17/100 loss=0.4213 lr=3.0e-4 elapsed=12.4s\n"


def evaluation(evaluation_id: str, now: datetime) -> Evaluation:
    return Evaluation(
        id=EvaluationId(evaluation_id),
        code=CODE,
        created_at=now,
        updated_at=now,
        metadata={"user": "bench", "tags": ["a", "b"]},
    )


def running(evaluation_id: str) -> Evaluation:
    """The record at version 2, moved to running: what every update variant writes."""
    record = evaluation(evaluation_id, datetime.now(UTC))
    record.status = EvaluationStatus.RUNNING
    record.version = 2
    return record


def event(evaluation_id: str) -> EvaluationEvent:
    return EvaluationEvent(
        evaluation_id=EvaluationId(evaluation_id),
        event_id=uuid.uuid4().hex,
        event_type="status_change",
        timestamp=datetime.now(UTC),
        message="running",
        metadata={"from": "queued"},
    )


def ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_{index:07d}" for index in range(count)]


class SessionPaths:
    """The service's adapters on a session, committed like the unit of work does."""

    def __init__(self, engine: AsyncEngine, keys: list[str]) -> None:
        self.sessions = create_session_maker(engine)
        self.keys = keys

    async def create(self, index: int) -> None:
        async with self.sessions() as session:
            bind_tenant(session, DEFAULT_TENANT)
            await SqlEvaluationRepository(session).add(
                evaluation(self.keys[index], datetime.now(UTC))
            )
            await session.commit()

    async def get(self, index: int) -> None:
        async with self.sessions() as session:
            bind_tenant(session, DEFAULT_TENANT)
            found = await SqlEvaluationRepository(session).get(EvaluationId(self.keys[index]))
            assert found is not None
            await session.commit()

    async def update(self, index: int) -> None:
        async with self.sessions() as session:
            bind_tenant(session, DEFAULT_TENANT)
            await SqlEvaluationRepository(session).update(
                running(self.keys[index]), expected_version=1
            )
            await session.commit()

    async def append_log(self, index: int) -> None:
        now = datetime.now(UTC)
        async with self.sessions() as session:
            bind_tenant(session, DEFAULT_TENANT)
            await SqlLogStore(session).append(
                EvaluationId(self.keys[index]), LOG_LINE, now, last_update=now
            )
            await session.commit()

    async def append_event(self, index: int) -> None:
        async with self.sessions() as session:
            bind_tenant(session, DEFAULT_TENANT)
            await SqlEventLog(session).append(event(self.keys[index]))
            await session.commit()


class ServicePaths:
    """The service's PostgreSQL adapters: a ``PgTransaction`` per operation, as per request."""

    def __init__(self, pool: "asyncpg.Pool[asyncpg.Record]", keys: list[str]) -> None:
        self.pool = pool
        self.keys = keys

    @asynccontextmanager
    async def _request(self) -> AsyncIterator[PgTransaction]:
        transaction = PgTransaction(self.pool, acquire_timeout_s=10, tenant=DEFAULT_TENANT)
        try:
            yield transaction
        finally:
            await transaction.close()

    async def create(self, index: int) -> None:
        async with self._request() as transaction:
            await PgEvaluationRepository(transaction).add(
                evaluation(self.keys[index], datetime.now(UTC))
            )
            await transaction.commit()

    async def get(self, index: int) -> None:
        async with self._request() as transaction:
            found = await PgEvaluationRepository(transaction).get(EvaluationId(self.keys[index]))
            assert found is not None

    async def update(self, index: int) -> None:
        async with self._request() as transaction:
            await PgEvaluationRepository(transaction).update(
                running(self.keys[index]), expected_version=1
            )
            await transaction.commit()

    async def append_log(self, index: int) -> None:
        now = datetime.now(UTC)
        async with self._request() as transaction:
            await PgLogStore(transaction).append(
                EvaluationId(self.keys[index]), LOG_LINE, now, last_update=now
            )
            await transaction.commit()

    async def append_event(self, index: int) -> None:
        async with self._request() as transaction:
            await PgEventLog(transaction).append(event(self.keys[index]))
            await transaction.commit()


class ConnectionPaths:
    """The same Core statements on an ``AsyncConnection``: no session in between."""

    def __init__(self, engine: AsyncEngine, keys: list[str]) -> None:
        self.engine = engine
        self.keys = keys

    async def _run(self, statement: sa.Executable) -> sa.CursorResult[object]:
        connection: AsyncConnection
        async with self.engine.begin() as connection:
            return await connection.execute(statement)

    async def create(self, index: int) -> None:
        values = evaluation_values(evaluation(self.keys[index], datetime.now(UTC)))
        await self._run(sa.insert(evaluations).values(values))

    async def get(self, index: int) -> None:
        async with self.engine.connect() as connection:
            result = await connection.execute(
                sa.select(evaluations).where(
                    evaluations.c.id == self.keys[index], evaluations.c.deleted_at.is_(None)
                )
            )
            assert result.mappings().first() is not None

    async def update(self, index: int) -> None:
        values = evaluation_values(evaluation(self.keys[index], datetime.now(UTC)))
        del values["id"]
        values.update(status="running", version=2)
        await self._run(
            sa.update(evaluations)
            .where(evaluations.c.id == self.keys[index], evaluations.c.version == 1)
            .values(values)
        )

    async def append_log(self, index: int) -> None:
        size = len(LOG_LINE.encode())
        async with self.engine.begin() as connection:
            end = (
                await connection.execute(
                    sa.update(evaluations)
                    .where(evaluations.c.id == self.keys[index])
                    .values(
                        log_size=evaluations.c.log_size + size,
                        last_update=datetime.now(UTC),
                        version=evaluations.c.version + 1,
                    )
                    .returning(evaluations.c.log_size)
                )
            ).scalar_one()
            await connection.execute(
                sa.insert(log_chunks).values(
                    evaluation_id=self.keys[index],
                    start_offset=end - size,
                    content=LOG_LINE,
                    created_at=datetime.now(UTC),
                )
            )

    async def append_event(self, index: int) -> None:
        await self._run(
            sa.insert(evaluation_events).values(
                evaluation_id=self.keys[index],
                event_id=uuid.uuid4().hex,
                event_type="status_change",
                timestamp=datetime.now(UTC),
                message="running",
                metadata={"from": "queued"},
            )
        )


INSERT_SQL = """
INSERT INTO evaluations (tenant_id, id, code, language, status, created_at, updated_at,
    metadata, output_compressed, error_compressed, retries, version, log_size)
VALUES ('default', $1, $2, 'python', 'queued', $3, $3, $4::jsonb, false, false, 0, 1, 0)
ON CONFLICT (tenant_id, id) DO NOTHING
"""
SELECT_SQL = "SELECT * FROM evaluations WHERE id = $1 AND deleted_at IS NULL"
UPDATE_SQL = """
UPDATE evaluations SET status = 'running', code = $2, metadata = $3::jsonb,
    updated_at = $4, version = 2
WHERE id = $1 AND version = 1
"""


class AsyncpgPaths:
    """Hand-written SQL on one bare asyncpg connection (prepared statements cached)."""

    def __init__(self, connection: asyncpg.Connection, keys: list[str]) -> None:
        self.connection = connection
        self.keys = keys
        self.metadata = json.dumps({"user": "bench", "tags": ["a", "b"]})

    async def create(self, index: int) -> None:
        async with self.connection.transaction():
            await self.connection.execute(
                INSERT_SQL, self.keys[index], CODE, datetime.now(UTC), self.metadata
            )

    async def get(self, index: int) -> None:
        row = await self.connection.fetchrow(SELECT_SQL, self.keys[index])
        assert row is not None

    async def update(self, index: int) -> None:
        async with self.connection.transaction():
            await self.connection.execute(
                UPDATE_SQL, self.keys[index], CODE, self.metadata, datetime.now(UTC)
            )

    async def append_log(self, index: int) -> None:
        size = len(LOG_LINE.encode())
        async with self.connection.transaction():
            reserved = await self.connection.fetchrow(
                RESERVE_LOG, self.keys[index], size, datetime.now(UTC)
            )
            assert reserved is not None
            end = reserved["log_size"]
            await self.connection.execute(
                INSERT_CHUNK, self.keys[index], end - size, LOG_LINE, datetime.now(UTC)
            )

    async def append_event(self, index: int) -> None:
        async with self.connection.transaction():
            await self.connection.execute(
                INSERT_EVENT,
                self.keys[index],
                uuid.uuid4().hex,
                "status_change",
                datetime.now(UTC),
                "running",
                json.dumps({"from": "queued"}),
            )


OPERATIONS = ("create", "get", "update", "append_log", "append_event")


async def timed(operation: Operation, start: int, count: int) -> float:
    """Mean microseconds per call of ``operation`` over ``count`` sequential calls."""
    began = time.perf_counter()
    for index in range(start, start + count):
        await operation(index)
    return (time.perf_counter() - began) / count * 1e6


async def run(database_url: str, ops: int, rounds: int) -> dict[str, dict[str, float]]:
    async with throwaway_database(database_url, "bench_hot_paths") as dsn:
        return await _run_in(dsn, ops, rounds)


async def _run_in(dsn: str, ops: int, rounds: int) -> dict[str, dict[str, float]]:
    settings = DatabaseSettings(url=dsn, pool_size=4)
    engine = create_engine(settings)
    pool = await create_pool(settings)
    raw = await asyncpg.connect(dsn)
    try:
        await upgrade_engine(engine)
        total = ops * rounds
        paths = {
            "session": SessionPaths(engine, ids("eval_session", total)),
            "connection": ConnectionPaths(engine, ids("eval_connection", total)),
            "service": ServicePaths(pool, ids("eval_service", total)),
            "asyncpg": AsyncpgPaths(raw, ids("eval_asyncpg", total)),
        }
        best: dict[str, dict[str, float]] = {kind: {} for kind in paths}
        for operation in OPERATIONS:
            for round_number in range(rounds):
                start = round_number * ops
                for kind, path in paths.items():
                    mean = await timed(getattr(path, operation), start, ops)
                    previous = best[kind].get(operation, float("inf"))
                    best[kind][operation] = min(previous, mean)
        return best
    finally:
        await raw.close()
        await pool.close()
        await engine.dispose()


def report(best: dict[str, dict[str, float]]) -> str:
    kinds = ("session", "connection", "service", "asyncpg")
    lines = [
        "| operation | "
        + " | ".join(f"{kind} (µs)" for kind in kinds)
        + " | session ÷ service | service ÷ asyncpg |",
        "|---|" + "---:|" * (len(kinds) + 2),
    ]
    for operation in OPERATIONS:
        means = [best[kind][operation] for kind in kinds]
        session, service, raw = means[0], means[2], means[3]
        lines.append(
            f"| {operation} | "
            + " | ".join(f"{mean:.0f}" for mean in means)
            + f" | {session / service:.2f} | {service / raw:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ops", type=int, default=2000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best one counts")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()
    best = asyncio.run(run(args.database_url, args.ops, args.rounds))
    print(report(best))


if __name__ == "__main__":
    main()
