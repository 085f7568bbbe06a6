"""The composition root: the only module that knows every adapter.

Settings pick the adapters: SQL (SQLite or PostgreSQL) or memory for records,
files or memory for blobs, Redis or in-process for the cache and the running
registry. APP scope holds engines and clients; REQUEST scope holds the session
and the use cases that share it.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
from dishka import (
    AsyncContainer,
    Provider,
    Scope,
    from_context,
    make_async_container,
    provide,
    provide_all,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from application.failover.handlers import WriteHandlers
from application.failover.journaled import JournaledWrites, RecordLocks
from application.failover.pinned_clock import PinnableClock
from application.failover.primary import PrimaryState
from application.failover.reads import RecordReads
from application.failover.report import JournalInspector
from application.failover.views import JournalViews
from application.failover.writes import Writes
from application.ports.audit_log import AuditLog
from application.ports.backend_inspector import BackendInspector
from application.ports.blob_store import BlobStore
from application.ports.blob_urls import BlobUrls
from application.ports.clock import Clock
from application.ports.evaluation_maintenance import EvaluationMaintenance
from application.ports.evaluation_queries import EvaluationQueries
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.event_log import EventLog
from application.ports.health_probe import HealthProbe
from application.ports.journal import Journal
from application.ports.log_store import LogStore
from application.ports.log_tail import LogTail
from application.ports.replay_marks import ReplayMarks
from application.ports.running_registry import RunningRegistry
from application.ports.scratch_store import ScratchStores
from application.ports.unit_of_work import UnitOfWork
from application.ports.use_case_locator import UseCaseLocator
from application.ports.worker_logs import WorkerLogs
from application.services.api_keys import ApiKeyVerifier
from application.services.audit_trail import AuditTrail
from application.services.payloads import PayloadStore
from application.services.publisher import RecordPublisher
from application.services.record_cache import RecordCache
from application.services.record_writer import RecordWriter
from application.use_cases.activity import GetActivity
from application.use_cases.audit import ListAuditLog
from application.use_cases.browse_blobs import BrowseBlobs
from application.use_cases.celery_update import ApplyCeleryUpdate
from application.use_cases.check_storage import CheckStorage
from application.use_cases.cleanup import CleanupEvaluations
from application.use_cases.create_evaluation import CreateEvaluation
from application.use_cases.delete_evaluation import DeleteEvaluation
from application.use_cases.evaluation_content import (
    AttachPayload,
    GetCompleteEvaluation,
    ReadPayload,
    UploadPayload,
)
from application.use_cases.events import ListEvents, RecordEvent
from application.use_cases.export_evaluations import ExportEvaluations
from application.use_cases.get_evaluation import GetEvaluation, GetEvaluationFields
from application.use_cases.import_evaluations import ImportEvaluation
from application.use_cases.list_evaluations import ListEvaluationFields, ListEvaluations
from application.use_cases.logs import AppendLog, GetEvaluationLogs, ReadLog
from application.use_cases.object_storage import GetPayloadUrl, TierPayloads
from application.use_cases.rebuild_cache import RebuildCache
from application.use_cases.running_evaluations import (
    GetRunningEvaluation,
    ListRunningEvaluations,
    RebuildRunningRegistry,
)
from application.use_cases.statistics import GetStatistics
from application.use_cases.storage_report import (
    CheckHealth,
    DescribeStorage,
    GetBackendDetails,
    GetDatabaseDetails,
    GetFileDetails,
    GetStorageOverview,
    StorageConfiguration,
    as_probe,
)
from application.use_cases.update_evaluation import ChangeApplier, UpdateEvaluation
from application.use_cases.warm_cache import WarmCache
from domain.audit import AuditContext
from domain.limits import InputLimits
from domain.payload import PayloadLocation
from infrastructure.clock import SystemClock
from infrastructure.files.blob_store import FileBlobStore
from infrastructure.files.inspector import FileBlobInspector
from infrastructure.files.journal import FileJournal
from infrastructure.memory.audit import MemoryAuditLog
from infrastructure.memory.blob_store import MemoryBlobInspector, MemoryBlobStore
from infrastructure.memory.cache import MemoryCache, MemoryCacheInspector
from infrastructure.memory.evaluations import (
    MemoryDatabase,
    MemoryDatabaseInspector,
    MemoryEvaluationQueries,
    MemoryEvaluationRepository,
)
from infrastructure.memory.journal import MemoryJournal, NoJournal
from infrastructure.memory.log_tail import MemoryLogTail, NoLogTail
from infrastructure.memory.maintenance import MemoryEvaluationMaintenance
from infrastructure.memory.replay_marks import MemoryReplayMarks
from infrastructure.memory.running_registry import MemoryRunningRegistry
from infrastructure.memory.timeline import MemoryEventLog, MemoryLogStore
from infrastructure.memory.unit_of_work import MemoryUnitOfWork
from infrastructure.memory.worker_logs import NoWorkerLogs
from infrastructure.postgres.audit import PgAuditLog
from infrastructure.postgres.evaluations import PgEvaluationRepository
from infrastructure.postgres.maintenance import PgEvaluationMaintenance
from infrastructure.postgres.pool import create_pool
from infrastructure.postgres.replay_marks import PgReplayMarks
from infrastructure.postgres.timeline import PgEventLog, PgLogStore
from infrastructure.postgres.transaction import PgTransaction
from infrastructure.redis.cache import RedisCache
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.inspector import RedisInspector
from infrastructure.redis.log_tail import RedisLogTail
from infrastructure.redis.running_registry import RedisRunningRegistry
from infrastructure.redis.worker_logs import RedisWorkerLogs
from infrastructure.s3.blob_store import NoBlobUrls, S3BlobInspector, S3BlobStore, S3BlobUrls
from infrastructure.s3.client import S3Connection
from infrastructure.sql.adapters import (
    SqlDatabaseInspector,
    SqlEvaluationQueries,
    SqlEvaluationRepository,
    SqlEventLog,
    SqlLogStore,
    SqlUnitOfWork,
)
from infrastructure.sql.audit import SqlAuditLog
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.maintenance import SqlEvaluationMaintenance
from infrastructure.sql.replay_marks import SqlReplayMarks
from interfaces import acting
from interfaces.scratch import ContainerScratchStores
from interfaces.settings import BlobBackend, FallbackBackend, Settings, StorageBackend

# The latest log bytes kept per running evaluation for tailing (``logs:{<id>}:latest``).
LOG_TAIL_BYTES = 256 * 1024


class DatabaseInspector(BackendInspector, Protocol):
    """The records backend's inspector (a distinct key for the container)."""


class BlobInspector(BackendInspector, Protocol):
    """The blob store's inspector."""


class CacheInspector(BackendInspector, Protocol):
    """The cache's inspector."""


@dataclass(frozen=True)
class BlobPlacement:
    """Where new blobs go (``location``) and the other stores old records may point at."""

    location: PayloadLocation = PayloadLocation.FILE
    others: dict[PayloadLocation, BlobStore] = field(default_factory=dict)


def _blob_urls(settings: Settings) -> dict[str, str]:
    """The URL each blob location's keys are relative to (``/complete`` links to them)."""
    if settings.storage_backend is StorageBackend.MEMORY:
        return {PayloadLocation.FILE.value: "memory://"}
    urls = {PayloadLocation.FILE.value: settings.file_storage_path.resolve().as_uri() + "/"}
    if settings.s3_configured:
        urls[PayloadLocation.S3.value] = f"s3://{settings.s3_bucket}/{settings.s3_prefix}"
    return urls


class CoreProvider(Provider):
    """Settings, clock, services and use cases: the same whatever the adapters."""

    settings = from_context(provides=Settings, scope=Scope.APP)

    @provide(scope=Scope.APP)
    def clock(self) -> Clock:
        return PinnableClock(SystemClock())

    @provide(scope=Scope.APP)
    async def journal(self, settings: Settings) -> AsyncIterator[Journal]:
        if settings.fallback_backend is FallbackBackend.MEMORY:
            yield MemoryJournal()
        elif settings.fallback_backend is FallbackBackend.NONE:
            yield NoJournal()
        else:
            journal = FileJournal(settings.file_storage_path)
            yield journal
            journal.close()

    @provide(scope=Scope.APP)
    async def scratch(self, clock: Clock, settings: Settings) -> AsyncIterator[ScratchStores]:
        scratch = settings.for_scratch()
        stores = ContainerScratchStores(
            lambda: make_async_container(
                *build_providers(scratch),
                ScratchProvider(),
                context={Settings: scratch, Clock: clock},
                # The session-scoped stores below would fail the scope check of the
                # inspectors, which a scratch deployment never builds.
                skip_validation=True,
            )
        )
        yield stores
        await stores.close()

    @provide(scope=Scope.APP)
    def payloads(
        self, blobs: BlobStore, settings: Settings, placement: BlobPlacement
    ) -> PayloadStore:
        return PayloadStore(
            blobs, settings.thresholds, location=placement.location, others=placement.others
        )

    @provide(scope=Scope.APP)
    def configuration(self, settings: Settings) -> StorageConfiguration:
        return StorageConfiguration(
            primary_backend=settings.storage_backend.value,
            fallback_backend=settings.fallback_backend.value,
            database="postgresql"
            if settings.is_postgres
            else "sqlite"
            if settings.storage_backend is StorageBackend.DATABASE
            else settings.storage_backend.value,
            cache=("redis" if settings.redis_url else "memory")
            if settings.enable_caching
            else "disabled",
            caching_enabled=settings.enable_caching,
            file_storage_path=str(settings.file_storage_path),
            large_file_threshold=settings.large_file_threshold,
            compression_threshold=settings.compression_threshold,
            preview_size=settings.preview_size,
            cache_ttl=settings.cache_ttl,
            max_request_bytes=settings.max_request_bytes,
            blob_backend=StorageBackend.MEMORY.value
            if settings.storage_backend is StorageBackend.MEMORY
            else settings.blob_backend.value,
            cache_backend="redis" if settings.redis_url else "memory",
            blob_urls=_blob_urls(settings),
        )

    services = provide_all(RecordPublisher, ChangeApplier, scope=Scope.APP)

    @provide(scope=Scope.REQUEST)
    def writer(
        self,
        repository: EvaluationRepository,
        uow: UnitOfWork,
        clock: Clock,
        payloads: PayloadStore,
        publisher: RecordPublisher,
        audit: AuditTrail,
        settings: Settings,
    ) -> RecordWriter:
        budget_s = settings.db_statement_timeout_ms / 1000
        return RecordWriter(repository, uow, clock, payloads, publisher, audit, budget_s)

    writes = provide_all(
        WriteHandlers, JournalViews, JournaledWrites, Writes, RecordReads, scope=Scope.REQUEST
    )
    primary = provide(PrimaryState, scope=Scope.APP)
    locks = provide(RecordLocks, scope=Scope.APP)

    @provide(scope=Scope.REQUEST)
    def locate(self, container: AsyncContainer) -> UseCaseLocator:
        return container

    @provide(scope=Scope.APP)
    def limits(self, settings: Settings) -> InputLimits:
        return settings.limits

    @provide(scope=Scope.APP)
    def api_keys(self, settings: Settings) -> ApiKeyVerifier:
        return ApiKeyVerifier(settings.api_keys)

    # Set by the HTTP guard per request and by the CLI per command; else "system".
    @provide(scope=Scope.REQUEST)
    def audit_context(self) -> AuditContext:
        return acting.current()

    audit = provide(AuditTrail, scope=Scope.REQUEST)

    use_cases = provide_all(
        CreateEvaluation,
        ListAuditLog,
        GetEvaluation,
        GetEvaluationFields,
        UpdateEvaluation,
        DeleteEvaluation,
        ListEvaluations,
        ListEvaluationFields,
        ListRunningEvaluations,
        GetRunningEvaluation,
        RebuildRunningRegistry,
        AppendLog,
        ReadLog,
        GetEvaluationLogs,
        RecordEvent,
        ListEvents,
        ApplyCeleryUpdate,
        GetCompleteEvaluation,
        ReadPayload,
        UploadPayload,
        AttachPayload,
        CheckStorage,
        GetStatistics,
        DescribeStorage,
        GetStorageOverview,
        GetBackendDetails,
        GetDatabaseDetails,
        GetFileDetails,
        GetActivity,
        BrowseBlobs,
        CleanupEvaluations,
        WarmCache,
        RebuildCache,
        ExportEvaluations,
        ImportEvaluation,
        GetPayloadUrl,
        TierPayloads,
        scope=Scope.REQUEST,
    )


class ScratchProvider(Provider):
    """A journal view's deployment: the app's clock, the actor ``journal``, no journal,
    and a database and blob store per session (one session per view)."""

    clock = from_context(provides=Clock, scope=Scope.APP, override=True)
    database = provide(MemoryDatabase, scope=Scope.SESSION, override=True)
    applier = provide(ChangeApplier, scope=Scope.SESSION, override=True)
    publisher = provide(RecordPublisher, scope=Scope.SESSION, override=True)
    audit_log = provide(MemoryAuditLog, provides=AuditLog, scope=Scope.SESSION, override=True)
    running = provide(
        MemoryRunningRegistry, provides=RunningRegistry, scope=Scope.SESSION, override=True
    )

    @provide(scope=Scope.SESSION, override=True)
    def store(self) -> MemoryBlobStore:
        return MemoryBlobStore()

    @provide(scope=Scope.SESSION, override=True)
    def blobs(self, store: MemoryBlobStore) -> BlobStore:
        return store

    @provide(scope=Scope.SESSION, override=True)
    def payloads(self, blobs: BlobStore, settings: Settings) -> PayloadStore:
        return PayloadStore(blobs, settings.thresholds)

    @provide(scope=Scope.APP, override=True)
    def journal(self) -> Journal:
        return NoJournal()

    @provide(scope=Scope.REQUEST, override=True)
    def audit_context(self) -> AuditContext:
        return AuditContext(actor="journal")


class SqlProvider(Provider):
    """SQLAlchemy on SQLite or PostgreSQL: one session per request.

    Lists, statistics and the inspector use it on both databases; on SQLite the
    write paths do too (``SqlWritePathsProvider``).
    """

    @provide(scope=Scope.APP)
    async def engine(self, settings: Settings) -> AsyncIterator[AsyncEngine]:
        engine = create_engine(settings)
        yield engine
        await engine.dispose()

    @provide(scope=Scope.APP)
    def session_maker(self, engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
        return create_session_maker(engine)

    @provide(scope=Scope.REQUEST)
    async def session(
        self, session_maker: async_sessionmaker[AsyncSession]
    ) -> AsyncIterator[AsyncSession]:
        async with session_maker() as session:
            yield session

    queries = provide(SqlEvaluationQueries, provides=EvaluationQueries, scope=Scope.REQUEST)

    @provide(scope=Scope.APP)
    def database_inspector(
        self, engine: AsyncEngine, session_maker: async_sessionmaker[AsyncSession]
    ) -> DatabaseInspector:
        return SqlDatabaseInspector(session_maker, engine)


class SqlWritePathsProvider(Provider):
    """Records, events and logs through the request's SQLAlchemy session (SQLite)."""

    scope = Scope.REQUEST
    repository = provide(SqlEvaluationRepository, provides=EvaluationRepository)
    events = provide(SqlEventLog, provides=EventLog)
    logs = provide(SqlLogStore, provides=LogStore)
    uow = provide(SqlUnitOfWork, provides=UnitOfWork)
    maintenance = provide(SqlEvaluationMaintenance, provides=EvaluationMaintenance)
    audit_log = provide(SqlAuditLog, provides=AuditLog)
    marks = provide(SqlReplayMarks, provides=ReplayMarks)


class PostgresWritePathsProvider(Provider):
    """Records, events and logs in hand-written SQL on an asyncpg pool (PostgreSQL).

    The hot paths skip SQLAlchemy: measured 4-14x slower per operation than
    asyncpg here (docs/benchmarks.md). The pool closes at shutdown.
    """

    @provide(scope=Scope.APP)
    async def pool(self, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
        pool = await create_pool(settings)
        yield pool
        await pool.close()

    @provide(scope=Scope.REQUEST)
    async def transaction(
        self, pool: asyncpg.Pool, settings: Settings
    ) -> AsyncIterator[PgTransaction]:
        transaction = PgTransaction(pool, acquire_timeout_s=settings.db_connect_timeout_s)
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
    marks = provide(PgReplayMarks, provides=ReplayMarks, scope=Scope.REQUEST)


class MemoryRecordsProvider(Provider):
    """Records in process memory (``STORAGE_BACKEND=memory``): fast, not durable."""

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
    audit_log = provide(MemoryAuditLog, provides=AuditLog, scope=Scope.APP)
    marks = provide(MemoryReplayMarks, provides=ReplayMarks, scope=Scope.APP)
    inspector = provide(MemoryDatabaseInspector, provides=DatabaseInspector, scope=Scope.APP)


class FileBlobProvider(Provider):
    scope = Scope.APP

    @provide
    def blobs(self, settings: Settings) -> BlobStore:
        return FileBlobStore(settings.file_storage_path)

    @provide
    def inspector(self, settings: Settings) -> BlobInspector:
        return FileBlobInspector(settings.file_storage_path)

    @provide
    def placement(self) -> BlobPlacement:
        return BlobPlacement()


class S3Provider(Provider):
    """The S3 client (opened at start, closed at shutdown), its store and presigned URLs."""

    scope = Scope.APP

    @provide
    async def connection(self, settings: Settings) -> AsyncIterator[S3Connection]:
        assert settings.s3_bucket is not None
        connection = S3Connection(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
        await connection.open()
        try:
            if settings.s3_create_bucket:
                await connection.ensure_bucket()
            yield connection
        finally:
            await connection.close()

    @provide
    def store(self, connection: S3Connection, settings: Settings) -> S3BlobStore:
        return S3BlobStore(connection, settings.s3_prefix)

    @provide
    def urls(self, store: S3BlobStore, connection: S3Connection, settings: Settings) -> BlobUrls:
        return S3BlobUrls(store, connection, settings.s3_presign_expiry_s)


class S3BlobProvider(Provider):
    """``BLOB_BACKEND=s3``: new blobs in S3; records still pointing at files read from them."""

    scope = Scope.APP

    @provide
    def blobs(self, store: S3BlobStore) -> BlobStore:
        return store

    @provide
    def inspector(
        self, store: S3BlobStore, connection: S3Connection, settings: Settings
    ) -> BlobInspector:
        return S3BlobInspector(store, connection, settings.s3_prefix)

    @provide
    def placement(self, settings: Settings) -> BlobPlacement:
        files: BlobStore = FileBlobStore(settings.file_storage_path)
        return BlobPlacement(PayloadLocation.S3, {PayloadLocation.FILE: files})


class TieringPlacementProvider(Provider):
    """Files first, S3 as the tier below (``S3_BUCKET`` set with ``BLOB_BACKEND=file``)."""

    scope = Scope.APP

    @provide(override=True)
    def placement(self, store: S3BlobStore) -> BlobPlacement:
        return BlobPlacement(PayloadLocation.FILE, {PayloadLocation.S3: store})


class NoBlobUrlsProvider(Provider):
    scope = Scope.APP
    urls = provide(NoBlobUrls, provides=BlobUrls)


class MemoryBlobProvider(Provider):
    scope = Scope.APP

    @provide
    def store(self) -> MemoryBlobStore:
        return MemoryBlobStore()

    @provide
    def blobs(self, store: MemoryBlobStore) -> BlobStore:
        return store

    @provide
    def inspector(self, store: MemoryBlobStore) -> BlobInspector:
        return MemoryBlobInspector(store)

    @provide
    def placement(self) -> BlobPlacement:
        return BlobPlacement()


class RedisProvider(Provider):
    """Cache and running registry in Redis; both survive a Redis outage by design."""

    scope = Scope.APP

    @provide
    async def connection(self, settings: Settings) -> AsyncIterator[RedisConnection]:
        assert settings.redis_url is not None
        connection = RedisConnection(
            settings.redis_url, timeout_s=settings.redis_timeout_s, cluster=settings.redis_cluster
        )
        yield connection
        await connection.close()

    @provide
    def record_cache(self, connection: RedisConnection, settings: Settings) -> RecordCache:
        if not settings.enable_caching:
            return RecordCache(None)
        return RecordCache(
            RedisCache(connection, ttl_seconds=settings.cache_ttl, prefix=settings.redis_key_prefix)
        )

    @provide
    def running(self, connection: RedisConnection, settings: Settings) -> RunningRegistry:
        return RedisRunningRegistry(connection, prefix=settings.redis_key_prefix)

    @provide
    def worker_logs(self, connection: RedisConnection, settings: Settings) -> WorkerLogs:
        # Read whether or not this service caches: the platform's worker writes it anyway.
        return RedisWorkerLogs(connection, prefix=settings.redis_key_prefix)

    @provide
    def inspector(self, connection: RedisConnection, settings: Settings) -> CacheInspector:
        return RedisInspector(connection, prefix=settings.redis_key_prefix)

    @provide
    def log_tail(self, connection: RedisConnection, settings: Settings) -> LogTail:
        if not settings.enable_caching:
            return NoLogTail()
        return RedisLogTail(
            connection,
            max_bytes=LOG_TAIL_BYTES,
            ttl_seconds=settings.cache_ttl,
            prefix=settings.redis_key_prefix,
        )


class InProcessCacheProvider(Provider):
    """Cache and running registry inside this process (no ``REDIS_URL``)."""

    scope = Scope.APP
    running = provide(MemoryRunningRegistry, provides=RunningRegistry)
    worker_logs = provide(NoWorkerLogs, provides=WorkerLogs)

    @provide
    def cache(self, settings: Settings) -> MemoryCache:
        return MemoryCache(ttl_seconds=settings.cache_ttl)

    @provide
    def record_cache(self, cache: MemoryCache, settings: Settings) -> RecordCache:
        return RecordCache(cache if settings.enable_caching else None)

    @provide
    def inspector(self, cache: MemoryCache) -> CacheInspector:
        return MemoryCacheInspector(cache)

    @provide
    def log_tail(self, settings: Settings) -> LogTail:
        return MemoryLogTail(LOG_TAIL_BYTES) if settings.enable_caching else NoLogTail()


class InspectorsProvider(Provider):
    @provide(scope=Scope.APP)
    def inspectors(
        self,
        database: DatabaseInspector,
        blobs: BlobInspector,
        cache: CacheInspector,
        journal: Journal,
        clock: Clock,
    ) -> list[BackendInspector]:
        found: list[BackendInspector] = [database, blobs, cache]
        if not isinstance(journal, NoJournal):
            found.append(JournalInspector(journal, clock))
        return found

    @provide(scope=Scope.APP)
    def probes(self, inspectors: list[BackendInspector]) -> list[HealthProbe]:
        return [as_probe(inspector) for inspector in inspectors]

    # Stateless: one per app, not one per health check.
    @provide(scope=Scope.APP)
    def check_health(self, probes: list[HealthProbe]) -> CheckHealth:
        return CheckHealth(probes)


def build_providers(settings: Settings) -> list[Provider]:
    """Pick one adapter per port from the settings."""
    records: list[Provider]
    if settings.storage_backend is StorageBackend.MEMORY:
        records = [MemoryRecordsProvider()]
    elif settings.is_postgres:
        records = [SqlProvider(), PostgresWritePathsProvider()]
    else:
        records = [SqlProvider(), SqlWritePathsProvider()]
    blobs: list[Provider]
    if settings.storage_backend is StorageBackend.MEMORY:
        blobs = [MemoryBlobProvider(), NoBlobUrlsProvider()]
    elif settings.blob_backend is BlobBackend.S3:
        blobs = [S3Provider(), S3BlobProvider()]
    elif settings.s3_configured:
        blobs = [FileBlobProvider(), S3Provider(), TieringPlacementProvider()]
    else:
        blobs = [FileBlobProvider(), NoBlobUrlsProvider()]
    cache: Provider = RedisProvider() if settings.redis_url else InProcessCacheProvider()
    return [CoreProvider(), *records, *blobs, cache, InspectorsProvider()]
