"""The write path: the record writer, the failover journal, the journal views' scratch."""

from collections.abc import AsyncIterator
from datetime import timedelta

from dishka import (
    AsyncContainer,
    Provider,
    Scope,
    from_context,
    make_async_container,
    provide,
    provide_all,
)

from application.failover.cached_reads import CachedReads
from application.failover.idempotency import IdempotencyKeys
from application.failover.journaled import JournaledWrites, RecordLocks
from application.failover.primary import PrimaryState
from application.failover.reads import RecordReads
from application.failover.views import JournalViews
from application.failover.writes import WriteHandlers, Writes
from application.ports.audit_log import AuditLog
from application.ports.blob_store import BlobStore
from application.ports.clock import Clock
from application.ports.idempotency_store import IdempotencyStore
from application.ports.journal import Journal
from application.ports.record_mirror import RecordMirror
from application.ports.running_registry import RunningRegistry
from application.ports.scratch_store import ScratchStores
from application.ports.use_case_locator import UseCaseLocator
from application.services.payloads import PayloadStore
from application.services.publisher import RecordPublisher
from application.use_cases.update_evaluation import ChangeApplier, ConflictBudget, RecordWriter
from domain.audit import AuditContext
from domain.tenancy import DEFAULT_TENANT
from infrastructure.files.idempotency import FileIdempotencyStore
from infrastructure.files.journal import FileJournal
from infrastructure.memory.audit import MemoryAuditLog
from infrastructure.memory.blob_store import MemoryBlobStore
from infrastructure.memory.evaluations import MemoryDatabase
from infrastructure.memory.idempotency import MemoryIdempotencyStore
from infrastructure.memory.journal import MemoryJournal, NoJournal
from infrastructure.memory.mirror import NoRecordMirror
from infrastructure.memory.running_registry import MemoryRunningRegistry
from interfaces.providers.sealing import BlobSeal
from interfaces.scratch import ContainerScratchStores
from interfaces.settings import FallbackBackend, Settings


class FailoverProvider(Provider):
    """Every write's path: the record writer, the journal and its scratch deployment."""

    @provide(scope=Scope.APP)
    async def journal(self, settings: Settings, seal: BlobSeal) -> AsyncIterator[Journal]:
        if settings.storage.fallback_backend is FallbackBackend.MEMORY:
            yield MemoryJournal()
        elif settings.storage.fallback_backend is FallbackBackend.NONE:
            yield NoJournal()
        else:
            journal = FileJournal(settings.storage.file_storage_path, seal.lines())
            yield journal
            journal.close()

    @provide(scope=Scope.APP)
    async def scratch(self, clock: Clock, settings: Settings) -> AsyncIterator[ScratchStores]:
        # The deployment this module is part of builds the scratch one too.
        from interfaces.providers import build_providers

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
    def conflict_budget(self, settings: Settings) -> ConflictBudget:
        return ConflictBudget(seconds=settings.database.statement_timeout_ms / 1000)

    writer = provide(RecordWriter, scope=Scope.REQUEST)

    writes = provide_all(
        WriteHandlers, JournalViews, JournaledWrites, Writes, RecordReads, scope=Scope.REQUEST
    )
    primary = provide(PrimaryState, scope=Scope.APP)
    cached_reads = provide(CachedReads, scope=Scope.APP)

    @provide(scope=Scope.APP)
    def idempotency_keys(
        self,
        store: IdempotencyStore,
        clock: Clock,
        primary: PrimaryState,
        settings: Settings,
        seal: BlobSeal,
    ) -> IdempotencyKeys:
        """The database's keys, and beside the journal the keys of journaled writes (each
        answer sealed when encryption is configured: it holds a whole record)."""
        fallback: IdempotencyStore | None = None
        mirror: IdempotencyStore | None = None
        if settings.storage.fallback_backend is FallbackBackend.FILE:
            root = settings.storage.file_storage_path
            fallback = FileIdempotencyStore(root)
            mirror = FileIdempotencyStore(root, durable=False)
        elif settings.storage.fallback_backend is FallbackBackend.MEMORY:
            fallback = mirror = MemoryIdempotencyStore()
        return IdempotencyKeys(
            seal.idempotency(store),
            None if fallback is None else seal.idempotency(fallback),
            None if mirror is None else seal.idempotency(mirror),
            clock,
            primary,
            ttl=timedelta(seconds=settings.idempotency.ttl_s),
            lease=timedelta(seconds=settings.idempotency.lease_s),
        )

    locks = provide(RecordLocks, scope=Scope.APP)

    @provide(scope=Scope.REQUEST)
    def locate(self, container: AsyncContainer) -> UseCaseLocator:
        return container


class ScratchProvider(Provider):
    """A journal view's deployment (``for_scratch``: memory, no cache, no journal) with the
    app's clock, the actor ``journal``, and per session (one per view) a database, blob
    store, audit log and running registry of its own."""

    clock = from_context(provides=Clock, scope=Scope.APP, override=True)
    database = provide(MemoryDatabase, scope=Scope.SESSION, override=True)
    applier = provide(ChangeApplier, scope=Scope.SESSION, override=True)
    publisher = provide(RecordPublisher, scope=Scope.SESSION, override=True)
    audit_log = provide(MemoryAuditLog, provides=AuditLog, scope=Scope.SESSION, override=True)
    running = provide(
        MemoryRunningRegistry, provides=RunningRegistry, scope=Scope.SESSION, override=True
    )

    @provide(scope=Scope.SESSION, override=True)
    def mirror(self) -> RecordMirror:
        return NoRecordMirror()  # a view of the journal is not a committed write

    @provide(scope=Scope.SESSION, override=True)
    def store(self) -> MemoryBlobStore:
        return MemoryBlobStore()

    @provide(scope=Scope.SESSION, override=True)
    def blobs(self, store: MemoryBlobStore) -> BlobStore:
        return store

    @provide(scope=Scope.SESSION, override=True)
    def payloads(self, blobs: BlobStore, settings: Settings) -> PayloadStore:
        return PayloadStore(blobs, settings.storage.thresholds)

    @provide(scope=Scope.REQUEST, override=True)
    def audit_context(self) -> AuditContext:
        # A view's deployment is its own, for one record: its tenant is a name inside it
        # (the entries it applies are the view's tenant's, read by ``pending_for``).
        return AuditContext(actor="journal", tenant=DEFAULT_TENANT)
