"""Records, events, logs and the audit trail: SQLite, PostgreSQL or process memory."""

from collections.abc import AsyncIterator

import asyncpg
import msgspec
from dishka import (
    Provider,
    Scope,
    provide,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from application.ports.audit_log import AuditLog
from application.ports.change_feed import ChangeFeed
from application.ports.evaluation_keys import EvaluationKeys
from application.ports.evaluation_maintenance import EvaluationMaintenance
from application.ports.evaluation_pages import EvaluationPages
from application.ports.evaluation_queries import EvaluationQueries
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.event_log import EventLog
from application.ports.idempotency_store import IdempotencyStore
from application.ports.log_store import LogStore
from application.ports.planner_statistics import PlannerStatistics
from application.ports.replay_marks import ReplayMarks
from application.ports.sealed_blobs import SealedRows
from application.ports.search_texts import SearchTexts
from application.ports.unit_of_work import UnitOfWork
from application.ports.warehouse import WarehouseScan
from application.use_cases.storage_report import InspectionProbe
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.memory.audit import MemoryAuditLog
from infrastructure.memory.changes import MemoryChangeFeed
from infrastructure.memory.evaluation_keys import MemoryEvaluationKeys
from infrastructure.memory.evaluations import (
    MemoryDatabase,
    MemoryDatabaseInspector,
    MemoryEvaluationQueries,
    MemoryEvaluationRepository,
)
from infrastructure.memory.idempotency import MemoryIdempotencyStore
from infrastructure.memory.maintenance import MemoryEvaluationMaintenance
from infrastructure.memory.planner_statistics import NoPlannerStatistics
from infrastructure.memory.replay_marks import MemoryReplayMarks
from infrastructure.memory.search_texts import MemorySearchTexts
from infrastructure.memory.timeline import MemoryEventLog, MemoryLogStore
from infrastructure.memory.unit_of_work import MemoryUnitOfWork
from infrastructure.memory.warehouse_scan import MemoryWarehouseScan
from infrastructure.postgres.audit import PgAuditLog
from infrastructure.postgres.changes import PgChangeFeed
from infrastructure.postgres.evaluation_keys import PgEvaluationKeys
from infrastructure.postgres.evaluation_pages import PgEvaluationPages
from infrastructure.postgres.evaluations import PgEvaluationRepository
from infrastructure.postgres.idempotency import PgIdempotencyStore
from infrastructure.postgres.maintenance import PgEvaluationMaintenance
from infrastructure.postgres.planner_statistics import PgPlannerStatistics
from infrastructure.postgres.pool import create_pool
from infrastructure.postgres.replay_marks import PgReplayMarks
from infrastructure.postgres.timeline import PgEventLog, PgLogStore
from infrastructure.postgres.transaction import PgTransaction
from infrastructure.sql.audit import SqlAuditLog
from infrastructure.sql.changes import SqlChangeFeed
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.evaluation_keys import SqlEvaluationKeys
from infrastructure.sql.evaluation_queries import SqlEvaluationQueries
from infrastructure.sql.evaluation_repository import SqlEvaluationRepository
from infrastructure.sql.idempotency import SqlIdempotencyStore
from infrastructure.sql.inspector import SqlDatabaseInspector
from infrastructure.sql.maintenance import SqlEvaluationMaintenance
from infrastructure.sql.replay_marks import SqlReplayMarks
from infrastructure.sql.sealed_rows import SqlSealedRows
from infrastructure.sql.search import SqlSearchTexts
from infrastructure.sql.tenancy import bind_tenant
from infrastructure.sql.timeline import SqlEventLog, SqlLogStore
from infrastructure.sql.unit_of_work import SqlUnitOfWork
from infrastructure.sql.warehouse_scan import SqlWarehouseScan
from interfaces.providers.keys import DatabaseInspector, DatabaseProbe
from interfaces.providers.sealing import DeploymentColumnSeal
from interfaces.settings import Settings


class SqlProvider(Provider):
    """SQLAlchemy on SQLite or PostgreSQL: one session per request.

    Lists, statistics and the inspector use it on both databases; on SQLite the
    write paths do too (``SqlWritePathsProvider``).
    """

    @provide(scope=Scope.APP)
    async def engine(self, settings: Settings) -> AsyncIterator[AsyncEngine]:
        engine = create_engine(settings.database)
        yield engine
        await engine.dispose()

    @provide(scope=Scope.APP)
    def session_maker(self, engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
        return create_session_maker(engine)

    @provide(scope=Scope.REQUEST)
    async def session(
        self, session_maker: async_sessionmaker[AsyncSession], tenant: TenantId
    ) -> AsyncIterator[AsyncSession]:
        """The request's session, every statement of it the request's tenant's."""
        async with session_maker() as session:
            yield bind_tenant(session, tenant)

    queries = provide(SqlEvaluationQueries, provides=EvaluationQueries, scope=Scope.REQUEST)

    @provide(scope=Scope.APP)
    def sealed_rows(
        self,
        sessions: async_sessionmaker[AsyncSession],
        columns: DeploymentColumnSeal,
        settings: Settings,
    ) -> SealedRows:
        """A round per tenant served: under row-level security none sees another's rows."""
        return SqlSealedRows(sessions, columns.seal, settings.access.tenants)

    search_texts = provide(SqlSearchTexts, provides=SearchTexts, scope=Scope.REQUEST)

    @provide(scope=Scope.REQUEST)
    def database_inspector(
        self,
        engine: AsyncEngine,
        session_maker: async_sessionmaker[AsyncSession],
        tenant: TenantId,
    ) -> DatabaseInspector:
        return SqlDatabaseInspector(session_maker, engine, tenant)

    @provide(scope=Scope.APP)
    def database_probe(
        self, engine: AsyncEngine, session_maker: async_sessionmaker[AsyncSession]
    ) -> DatabaseProbe:
        return SqlDatabaseInspector(session_maker, engine, DEFAULT_TENANT)


class SqlWritePathsProvider(Provider):
    """Records, events and logs through the request's SQLAlchemy session (SQLite)."""

    scope = Scope.REQUEST
    repository = provide(SqlEvaluationRepository, provides=EvaluationRepository)
    events = provide(SqlEventLog, provides=EventLog)
    logs = provide(SqlLogStore, provides=LogStore)
    uow = provide(SqlUnitOfWork, provides=UnitOfWork)
    maintenance = provide(SqlEvaluationMaintenance, provides=EvaluationMaintenance)
    audit_log = provide(SqlAuditLog, provides=AuditLog)
    changes = provide(SqlChangeFeed, provides=ChangeFeed)
    warehouse = provide(SqlWarehouseScan, provides=WarehouseScan)
    marks = provide(SqlReplayMarks, provides=ReplayMarks)
    idempotency = provide(SqlIdempotencyStore, provides=IdempotencyStore, scope=Scope.APP)

    @provide(scope=Scope.APP)
    def evaluation_keys(self, sessions: async_sessionmaker[AsyncSession]) -> EvaluationKeys:
        return SqlEvaluationKeys(sessions)  # the file backend's index holds the key table too

    planner = provide(NoPlannerStatistics, provides=PlannerStatistics, scope=Scope.APP)

    @provide
    def pages(self, queries: EvaluationQueries) -> EvaluationPages:
        return queries


class PostgresWritePathsProvider(Provider):
    """Records, events and logs in hand-written SQL on an asyncpg pool (PostgreSQL).

    The hot paths skip SQLAlchemy: measured 4-14x slower per operation than
    asyncpg here (docs/benchmarks.md). The pool closes at shutdown.
    """

    @provide(scope=Scope.APP)
    async def pool(self, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
        pool = await create_pool(settings.database)
        yield pool
        await pool.close()

    @provide(scope=Scope.REQUEST)
    async def transaction(
        self, pool: asyncpg.Pool, settings: Settings, tenant: TenantId
    ) -> AsyncIterator[PgTransaction]:
        """The request's unit of work, every statement of it the request's tenant's."""
        transaction = PgTransaction(
            pool, acquire_timeout_s=settings.database.connect_timeout_s, tenant=tenant
        )
        try:
            yield transaction
        finally:
            await transaction.close()

    @provide(scope=Scope.REQUEST)
    def uow(self, transaction: PgTransaction) -> UnitOfWork:
        return transaction

    repository = provide(PgEvaluationRepository, provides=EvaluationRepository, scope=Scope.REQUEST)
    events = provide(PgEventLog, provides=EventLog, scope=Scope.REQUEST)
    logs = provide(PgLogStore, provides=LogStore, scope=Scope.REQUEST)
    maintenance = provide(
        PgEvaluationMaintenance, provides=EvaluationMaintenance, scope=Scope.REQUEST
    )
    audit_log = provide(PgAuditLog, provides=AuditLog, scope=Scope.REQUEST)
    changes = provide(PgChangeFeed, provides=ChangeFeed, scope=Scope.REQUEST)

    @provide(scope=Scope.APP)
    def warehouse(self, settings: Settings) -> WarehouseScan:
        # Imported when an export asks: the ADBC driver is most of a second to load.
        from infrastructure.postgres.warehouse_scan import PgWarehouseScan

        return PgWarehouseScan(settings.database.url)

    marks = provide(PgReplayMarks, provides=ReplayMarks, scope=Scope.REQUEST)
    # The list on the request's connection: no SQLAlchemy session is opened for it.
    pages = provide(PgEvaluationPages, provides=EvaluationPages, scope=Scope.REQUEST)

    @provide(scope=Scope.APP)
    async def planner(
        self, pool: asyncpg.Pool, settings: Settings
    ) -> AsyncIterator[PlannerStatistics]:
        """``ANALYZE`` needs the tables' owner on PostgreSQL 15 (ADR 0032): with
        ``MIGRATION_DATABASE_URL`` naming another role, a pool of one connection as it."""
        database = settings.database
        if database.owner_url == database.url:
            yield PgPlannerStatistics(pool)
            return
        owner = await create_pool(
            msgspec.structs.replace(database, url=database.owner_url, pool_size=1)
        )
        try:
            yield PgPlannerStatistics(owner)
        finally:
            await owner.close()

    @provide(scope=Scope.APP)
    def idempotency(self, pool: asyncpg.Pool) -> IdempotencyStore:
        return PgIdempotencyStore(pool)

    @provide(scope=Scope.APP)
    def evaluation_keys(self, pool: asyncpg.Pool) -> EvaluationKeys:
        return PgEvaluationKeys(pool)


class MemoryRecordsProvider(Provider):
    """Records in process memory (``STORAGE_BACKEND=memory``): fast, not durable.

    The request's adapters are made for the request's tenant, on its tables, trail and
    marks alone.
    """

    database = provide(MemoryDatabase, scope=Scope.APP)
    repository = provide(
        MemoryEvaluationRepository, provides=EvaluationRepository, scope=Scope.REQUEST
    )
    queries = provide(MemoryEvaluationQueries, provides=EvaluationQueries, scope=Scope.REQUEST)
    events = provide(MemoryEventLog, provides=EventLog, scope=Scope.REQUEST)
    logs = provide(MemoryLogStore, provides=LogStore, scope=Scope.REQUEST)
    uow = provide(MemoryUnitOfWork, provides=UnitOfWork, scope=Scope.REQUEST)
    maintenance = provide(
        MemoryEvaluationMaintenance, provides=EvaluationMaintenance, scope=Scope.REQUEST
    )
    audit_entries = provide(MemoryAuditLog, scope=Scope.APP)

    @provide(scope=Scope.REQUEST)
    def audit_log(self, entries: MemoryAuditLog, tenant: TenantId) -> AuditLog:
        return entries.of(tenant)

    @provide(scope=Scope.REQUEST)
    def changes(self, entries: MemoryAuditLog, tenant: TenantId) -> ChangeFeed:
        return MemoryChangeFeed(entries.of(tenant))

    warehouse = provide(MemoryWarehouseScan, provides=WarehouseScan, scope=Scope.REQUEST)
    search_texts = provide(MemorySearchTexts, provides=SearchTexts, scope=Scope.REQUEST)
    applied_marks = provide(MemoryReplayMarks, scope=Scope.APP)

    @provide(scope=Scope.REQUEST)
    def marks(self, applied: MemoryReplayMarks, tenant: TenantId) -> ReplayMarks:
        return applied.of(tenant)

    idempotency = provide(MemoryIdempotencyStore, provides=IdempotencyStore, scope=Scope.APP)
    evaluation_keys = provide(MemoryEvaluationKeys, provides=EvaluationKeys, scope=Scope.APP)
    planner = provide(NoPlannerStatistics, provides=PlannerStatistics, scope=Scope.APP)

    @provide(scope=Scope.REQUEST)
    def inspector(self, database: MemoryDatabase, tenant: TenantId) -> DatabaseInspector:
        return MemoryDatabaseInspector(database.of(tenant))

    @provide(scope=Scope.APP)
    def probe(self, database: MemoryDatabase) -> DatabaseProbe:
        return InspectionProbe(MemoryDatabaseInspector(database))

    @provide(scope=Scope.REQUEST)
    def pages(self, queries: EvaluationQueries) -> EvaluationPages:
        return queries
