"""The failover tests' world: one deployment on the memory adapters with an outage switch.

The primary's outage is a switch on the repository (every call raises what the
SQL adapters raise when PostgreSQL is gone); tests/e2e/test_failover.py does the
same against a real PostgreSQL that is stopped with ``pg_ctl -m immediate``.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
from dishka import Provider, Scope, from_context, provide

from application.backends import Backend
from application.commands import NewEvaluation
from application.errors import BackendUnavailableError, WriteConflictError
from application.failover.pinned_clock import PinnableClock
from application.failover.primary import PrimaryState
from application.failover.reads import RecordReads
from application.failover.replay import ReplayJournal
from application.failover.writes import WriteHandlers, Writes
from application.ports.audit_log import AuditLog
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.journal import Journal
from application.ports.replay_marks import ReplayMarks
from application.ports.unit_of_work import UnitOfWork
from application.services.payloads import PayloadStore
from application.services.record_cache import RecordCache
from domain.audit import AuditContext
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.memory.audit import MemoryAuditLog
from infrastructure.memory.blob_store import MemoryBlobStore
from infrastructure.memory.cache import MemoryCache
from infrastructure.memory.evaluations import MemoryDatabase, MemoryEvaluationRepository
from infrastructure.memory.journal import MemoryJournal
from infrastructure.memory.replay_marks import MemoryReplayMarks
from interfaces import acting
from interfaces.replay import ContainerReplayScopes
from tests.use_cases.conftest import THRESHOLDS, FakeWorkerLogs, FixedClock, use_case_container

ID = EvaluationId("eval-failover-1")
ACTOR = "key:worker"


class Outage:
    """The primary's state: while ``down``, every repository call fails like PostgreSQL's."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0
        # The next this many writes are ended as PostgreSQL ends a deadlock's victim.
        self.ending = 0

    def check(self) -> None:
        self.calls += 1
        if self.down:
            raise BackendUnavailableError(Backend.DATABASE, "ConnectionRefusedError: test outage")

    def check_write(self) -> None:
        self.check()
        if self.ending:
            self.ending -= 1
            raise WriteConflictError(Backend.DATABASE, "DeadlockDetectedError: test deadlock")


class OutageRepository:
    """``EvaluationRepository`` that fails while the outage lasts."""

    def __init__(self, inner: MemoryEvaluationRepository, outage: Outage) -> None:
        self._inner = inner
        self._outage = outage

    async def add(self, evaluation: Evaluation) -> None:
        self._outage.check_write()
        await self._inner.add(evaluation)

    async def get(self, evaluation_id: EvaluationId) -> Evaluation | None:
        self._outage.check()
        return await self._inner.get(evaluation_id)

    async def get_any(self, evaluation_id: EvaluationId) -> Evaluation | None:
        self._outage.check()
        return await self._inner.get_any(evaluation_id)

    async def get_fields(self, evaluation_id: EvaluationId, fields: frozenset[str]) -> Any:
        self._outage.check()
        return await self._inner.get_fields(evaluation_id, fields)

    async def update(self, evaluation: Evaluation, expected_version: int) -> None:
        self._outage.check()
        await self._inner.update(evaluation, expected_version)


class WorldOverrides(Provider):
    """The app's wiring with the world's shared state and an outage switch on the primary."""

    scope = Scope.APP
    database = from_context(provides=MemoryDatabase, override=True)
    journal = from_context(provides=Journal, override=True)
    cache = from_context(provides=RecordCache, override=True)
    marks = from_context(provides=ReplayMarks, override=True)
    audit_log = from_context(provides=AuditLog, override=True)
    primary = from_context(provides=PrimaryState, override=True)
    blobs = from_context(provides=MemoryBlobStore, override=True)
    outage = from_context(provides=Outage)

    @provide(scope=Scope.REQUEST, override=True)
    def audit_context(self) -> AuditContext:
        return acting.current()  # as the app: who the request acts as (``World.wire``)

    @provide(scope=Scope.REQUEST, override=True)
    def repository(
        self, database: MemoryDatabase, tenant: TenantId, outage: Outage
    ) -> EvaluationRepository:
        return OutageRepository(MemoryEvaluationRepository(database, tenant), outage)


@dataclass
class Wiring:
    """One request's worth of collaborators (one request scope of the world's container)."""

    writes: Writes
    reads: RecordReads
    handlers: WriteHandlers
    uow: UnitOfWork


class World:
    """The shared state of one deployment: database, cache, blobs, journal, marks."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.fixed = FixedClock()
        self.clock = PinnableClock(self.fixed)
        self.outage = Outage()
        self.database = MemoryDatabase()
        self.cache = RecordCache(MemoryCache(ttl_seconds=3600))
        self.blobs = MemoryBlobStore()
        self.payloads = PayloadStore(self.blobs, THRESHOLDS)
        self.journal: Journal = journal or MemoryJournal()
        self.marks = MemoryReplayMarks()
        self.audit_log = MemoryAuditLog()
        self.requests = 0
        self.primary = PrimaryState(self.clock)
        self.container = use_case_container(
            self.clock,
            FakeWorkerLogs(),
            WorldOverrides(),
            context={
                MemoryDatabase: self.database,
                Journal: self.journal,
                RecordCache: self.cache,
                ReplayMarks: self.marks,
                AuditLog: self.audit_log,
                PrimaryState: self.primary,
                MemoryBlobStore: self.blobs,
                Outage: self.outage,
            },
        )

    async def wire(self, context: AuditContext | None = None) -> Wiring:
        """A new request: its own request id, as the HTTP edge gives each one."""
        self.requests += 1
        context = context or AuditContext(actor=ACTOR, request_id=f"req-{self.requests}")
        if context.tenant is None:  # the edge gives every request its caller's tenant
            context = msgspec.structs.replace(context, tenant=DEFAULT_TENANT)
        # A request scope of memory adapters holds no finalizer: it ends with the test.
        request = self.container()
        # Resolved while acting as ``context``: the request scope keeps it for the use
        # cases built later, as the HTTP guard's context lasts the whole request.
        with acting.acting_as(context):
            await request.get(AuditContext)  # kept by the request scope from here on
            return Wiring(
                writes=await request.get(Writes),
                reads=await request.get(RecordReads),
                handlers=await request.get(WriteHandlers),
                uow=await request.get(UnitOfWork),
            )

    def replay(self) -> ReplayJournal:
        return ReplayJournal(self.journal, ContainerReplayScopes(self.container), self.primary)

    def stored(self, evaluation_id: EvaluationId) -> Evaluation:
        return self.database.evaluations[evaluation_id]

    def primary_down(self) -> bool:
        """Read afresh each time (an attribute read would stay narrowed across awaits)."""
        return self.primary.is_down


@asynccontextmanager
async def running_world(journal: Journal | None = None) -> AsyncIterator[World]:
    """A world for one test; its container is closed at the end."""
    built = World(journal)
    try:
        yield built
    finally:
        await built.container.close()


async def create(world: World, **fields: Any) -> Evaluation:
    return await (await world.wire()).writes.create(NewEvaluation(**{"code": "print(1)", **fields}))
