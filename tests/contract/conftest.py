"""Fixtures for the evaluation, event and log ports over memory, SQLite and PostgreSQL.

``sql_backend`` gives one empty, migrated store per test; ``store.session()``
opens a request-like scope with every port on one session, committing on a
clean exit, the way a use case commits through the unit of work.
"""

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from application.ports.audit_log import AuditLog
from application.ports.backend_inspector import BackendInspector
from application.ports.change_feed import ChangeFeed
from application.ports.evaluation_maintenance import EvaluationMaintenance
from application.ports.evaluation_pages import EvaluationPages
from application.ports.evaluation_queries import EvaluationQueries
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.event_log import EventLog
from application.ports.log_store import LogStore
from application.ports.search_texts import SearchTexts
from application.ports.unit_of_work import UnitOfWork
from application.ports.warehouse import WarehouseScan
from domain.evaluation import Evaluation
from domain.identifiers import parse_evaluation_id
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.crypto.evaluation_keys import EvaluationKeyring
from infrastructure.crypto.keyring import Keyring
from infrastructure.crypto.lines import LineSeal
from infrastructure.files.journal import FileJournal
from infrastructure.memory.audit import MemoryAuditLog
from infrastructure.memory.changes import MemoryChangeFeed
from infrastructure.memory.evaluation_keys import MemoryEvaluationKeys
from infrastructure.memory.evaluations import (
    MemoryDatabase,
    MemoryDatabaseInspector,
    MemoryEvaluationQueries,
    MemoryEvaluationRepository,
)
from infrastructure.memory.maintenance import MemoryEvaluationMaintenance
from infrastructure.memory.search_texts import MemorySearchTexts
from infrastructure.memory.timeline import MemoryEventLog, MemoryLogStore
from infrastructure.memory.unit_of_work import MemoryUnitOfWork
from infrastructure.memory.warehouse_scan import MemoryWarehouseScan
from infrastructure.postgres.audit import PgAuditLog
from infrastructure.postgres.changes import PgChangeFeed
from infrastructure.postgres.evaluation_pages import PgEvaluationPages
from infrastructure.postgres.evaluations import PgEvaluationRepository
from infrastructure.postgres.maintenance import PgEvaluationMaintenance
from infrastructure.postgres.pool import create_pool
from infrastructure.postgres.timeline import PgEventLog, PgLogStore
from infrastructure.postgres.transaction import PgTransaction
from infrastructure.postgres.warehouse_scan import PgWarehouseScan
from infrastructure.sql.audit import SqlAuditLog
from infrastructure.sql.changes import SqlChangeFeed
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.evaluation_queries import SqlEvaluationQueries
from infrastructure.sql.evaluation_repository import SqlEvaluationRepository
from infrastructure.sql.inspector import SqlDatabaseInspector
from infrastructure.sql.maintenance import SqlEvaluationMaintenance
from infrastructure.sql.search import SqlSearchTexts
from infrastructure.sql.tables import ALL_TABLES
from infrastructure.sql.tenancy import bind_tenant
from infrastructure.sql.timeline import SqlEventLog, SqlLogStore
from infrastructure.sql.unit_of_work import SqlUnitOfWork
from infrastructure.sql.warehouse_scan import SqlWarehouseScan
from interfaces.settings import DatabaseSettings
from tests.keys import fresh_keyring
from tests.row_security import emptied, row_secured
from tests.services import migrated_postgres_database, migrated_sqlite


@dataclass
class Ports:
    repository: EvaluationRepository
    queries: EvaluationQueries
    events: EventLog
    logs: LogStore
    uow: UnitOfWork
    audit: AuditLog
    # What ``GET /evaluations`` reads: ``queries`` itself but on PostgreSQL (asyncpg).
    pages: EvaluationPages
    changes: ChangeFeed
    warehouse: WarehouseScan
    search: SearchTexts


class PortStore(Protocol):
    """One backend's adapters; ``session()`` is one request's scope."""

    kind: str
    inspector: BackendInspector

    def session(self, tenant: TenantId = DEFAULT_TENANT) -> AbstractAsyncContextManager[Ports]:
        """One request of ``tenant`` (its every adapter made for it, as the container does)."""
        ...


class MemoryPortStore:
    kind = "memory"

    def __init__(self) -> None:
        self.database = MemoryDatabase()
        self.inspector: BackendInspector = MemoryDatabaseInspector(self.database)
        self.audit = MemoryAuditLog()

    @asynccontextmanager
    async def session(self, tenant: TenantId = DEFAULT_TENANT) -> AsyncIterator[Ports]:
        db = self.database
        uow = MemoryUnitOfWork()
        queries = MemoryEvaluationQueries(db, tenant)
        audit = self.audit.of(tenant)
        yield Ports(
            MemoryEvaluationRepository(db, tenant),
            queries,
            MemoryEventLog(db, tenant),
            MemoryLogStore(db, tenant),
            uow,
            audit,
            queries,
            MemoryChangeFeed(audit),
            MemoryWarehouseScan(db),
            MemorySearchTexts(db, tenant),
        )
        await uow.commit()


class SqlPortStore:
    """SQLAlchemy adapters: SQLite, and PostgreSQL as ``postgres-sqlalchemy``."""

    def __init__(self, kind: str, engine: AsyncEngine) -> None:
        self.kind = kind
        self.engine = engine
        self.session_maker: async_sessionmaker[AsyncSession] = create_session_maker(engine)
        self.inspector: BackendInspector = SqlDatabaseInspector(self.session_maker, engine)

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def session(self, tenant: TenantId = DEFAULT_TENANT) -> AsyncIterator[Ports]:
        async with self.session_maker() as session:
            bind_tenant(session, tenant)
            uow = SqlUnitOfWork(session)
            queries = SqlEvaluationQueries(session)
            yield Ports(
                SqlEvaluationRepository(session),
                queries,
                SqlEventLog(session),
                SqlLogStore(session),
                uow,
                SqlAuditLog(session),
                queries,
                SqlChangeFeed(session),
                SqlWarehouseScan(session),
                SqlSearchTexts(session),
            )
            await uow.commit()


class PgPortStore(SqlPortStore):
    """What the service runs on PostgreSQL: asyncpg write paths and pages, SQLAlchemy queries."""

    def __init__(self, engine: AsyncEngine, pool: "asyncpg.Pool[asyncpg.Record]", url: str) -> None:
        super().__init__("postgres", engine)
        self.pool = pool
        self.url = url

    @asynccontextmanager
    async def session(self, tenant: TenantId = DEFAULT_TENANT) -> AsyncIterator[Ports]:
        async with self.session_maker() as session:
            bind_tenant(session, tenant)
            transaction = PgTransaction(self.pool, acquire_timeout_s=10, tenant=tenant)
            try:
                yield Ports(
                    PgEvaluationRepository(transaction),
                    SqlEvaluationQueries(session),
                    PgEventLog(transaction),
                    PgLogStore(transaction),
                    transaction,
                    PgAuditLog(transaction),
                    PgEvaluationPages(transaction),
                    PgChangeFeed(transaction),
                    PgWarehouseScan(self.url),
                    SqlSearchTexts(session),
                )
                await transaction.commit()
            finally:
                await transaction.close()

    async def close(self) -> None:
        await self.pool.close()
        await super().close()


@asynccontextmanager
async def maintenance(
    store: PortStore, *, commit: bool = True, tenant: TenantId = DEFAULT_TENANT
) -> AsyncIterator[tuple[EvaluationMaintenance, UnitOfWork]]:
    """The maintenance adapter the service wires for ``store`` and ``tenant``, on one scope
    committing on a clean exit."""
    if isinstance(store, MemoryPortStore):
        yield MemoryEvaluationMaintenance(store.database, tenant), MemoryUnitOfWork()
    elif isinstance(store, PgPortStore):
        transaction = PgTransaction(store.pool, acquire_timeout_s=10, tenant=tenant)
        try:
            yield PgEvaluationMaintenance(transaction), transaction
            if commit:
                await transaction.commit()
        finally:
            await transaction.close()
    else:
        assert isinstance(store, SqlPortStore)
        async with store.session_maker() as session:
            bind_tenant(session, tenant)
            uow = SqlUnitOfWork(session)
            yield SqlEvaluationMaintenance(session), uow
            if commit:
                await uow.commit()


@pytest.fixture(scope="session")
def migrated_postgres_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the whole run; tests truncate it."""
    with migrated_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def row_secured_postgres_urls() -> Iterator[tuple[str, str]]:
    """A migrated PostgreSQL database under row-level security for the whole run: its
    owner's URL (to empty it) and the service role's (``tests.row_security``)."""
    with migrated_postgres_database() as url, row_secured(url) as service_url:
        yield url, service_url


@pytest.fixture
def migrated_sqlite_url(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path / "nested" / "storage.db")


async def _truncate(engine: AsyncEngine) -> None:
    names = ", ".join(table.name for table in ALL_TABLES)
    async with engine.begin() as connection:
        await connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def _url_of(kind: str, request: pytest.FixtureRequest) -> str:
    # Resolved in a sync fixture: the PostgreSQL fixture runs asyncio.run itself.
    if kind == "sqlite":
        url: str = request.getfixturevalue("migrated_sqlite_url")
    elif kind.endswith(ROW_SECURED):
        owner, url = request.getfixturevalue("row_secured_postgres_urls")
        emptied(owner, *(table.name for table in ALL_TABLES))
    else:
        url = request.getfixturevalue("migrated_postgres_url")
    return url


async def _sql_store(kind: str, url: str) -> SqlPortStore:
    settings = DatabaseSettings(url=url, pool_size=5)
    engine = create_engine(settings)
    if kind == "sqlite":
        return SqlPortStore(kind, engine)
    if kind.endswith(ROW_SECURED):  # emptied by its owner; the store is the one it tests
        kind = kind.removesuffix(ROW_SECURED)
    else:
        await _truncate(engine)
    if kind == "postgres":
        return PgPortStore(engine, await create_pool(settings), url)
    return SqlPortStore(kind, engine)


# The same stores connected as the service's role to a database under row-level security
# (ADR 0032): without the tenant set where the policies read it, they would see no row.
ROW_SECURED = "-row-secured"
BACKENDS: list[Any] = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("postgres-sqlalchemy", marks=pytest.mark.postgres),
]
ROW_SECURED_BACKENDS = [
    pytest.param(f"postgres{ROW_SECURED}", marks=pytest.mark.postgres),
    pytest.param(f"postgres-sqlalchemy{ROW_SECURED}", marks=pytest.mark.postgres),
]


def store_url_of(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """``port_store_url`` of the backend ``request.param`` names."""
    kind: str = request.param
    return kind, None if kind == "memory" else _url_of(kind, request)


@pytest.fixture(params=BACKENDS + ROW_SECURED_BACKENDS)
def port_store_url(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    return store_url_of(request)


@pytest.fixture
async def sql_backend(
    port_store_url: tuple[str, str | None], anyio_backend: str
) -> AsyncIterator[PortStore]:
    """Evaluation/event/log ports on an empty store: memory, SQLite file or PostgreSQL."""
    kind, url = port_store_url
    if url is None:
        yield MemoryPortStore()
        return
    store = await _sql_store(kind, url)
    try:
        yield store
    finally:
        await store.close()


BASE_TIME = datetime(2024, 7, 1, 12, 0, 0, 123456, tzinfo=UTC)


class _Held(EvaluationKeyring):
    """Holds a key for every evaluation, made the first time one is asked for."""

    def __init__(self, keyring: Keyring) -> None:
        super().__init__(MemoryEvaluationKeys(), keyring)
        self._made: dict[str, bytes] = {}

    def known(self, evaluation_id: str) -> bytes | None:
        return self._made.setdefault(evaluation_id, os.urandom(32))


def make_evaluation(
    evaluation_id: str, *, created_at: datetime = BASE_TIME, **fields: Any
) -> Evaluation:
    """A valid record with sensible defaults; ``fields`` override any attribute."""
    values: dict[str, Any] = {
        "id": parse_evaluation_id(evaluation_id),
        "code": "print('hello')",
        "created_at": created_at,
        "updated_at": created_at,
    }
    values.update(fields)
    return Evaluation(**values)


@pytest.fixture(params=["clear", "sealed", "shredded"])
def file_journals(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], FileJournal]]:
    """Makes FileJournal instances over one root (each one a "process"); closes them all.
    ``sealed``: every line sealed (``ENCRYPTION=on``), all instances sharing one keyring;
    ``shredded``: and each line under its evaluation's key (``ENCRYPTION_SHREDDING=on``),
    every key held by the processes (the journal uses only a key at hand)."""
    made: list[FileJournal] = []
    seal = LineSeal(fresh_keyring()) if request.param == "sealed" else None
    if request.param == "shredded":
        keyring = fresh_keyring()
        seal = LineSeal(keyring, keys=_Held(keyring), shred=True)

    def make() -> FileJournal:
        journal = FileJournal(tmp_path, seal)
        made.append(journal)
        return journal

    yield make
    for journal in made:
        journal.close()
