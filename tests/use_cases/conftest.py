"""Use cases from the app's own providers, over the in-memory adapters.

No HTTP: each test gets a fresh ``UseCases``, one request scope of a container built
by ``build_providers`` for ``STORAGE_BACKEND=memory`` with a few overrides: a clock
that only moves when the test moves it, the platform worker's log batches set by the
test, a small log tail, and payload thresholds so small that "large" outputs are a
few dozen bytes.
"""

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from dishka import AsyncContainer, Provider, Scope, from_context, make_async_container, provide

from application.ports.audit_log import AuditLog
from application.ports.backend_inspector import BackendInspector
from application.ports.clock import Clock
from application.ports.evaluation_queries import EvaluationQueries
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.event_log import EventLog
from application.ports.log_store import LogStore
from application.ports.log_tail import LogTail
from application.ports.replay_marks import ReplayMarks
from application.ports.running_registry import RunningRegistry
from application.ports.unit_of_work import UnitOfWork
from application.ports.worker_logs import WorkerLogs
from application.queries import BackendReport, BackendState
from application.services.audit_trail import AuditTrail
from application.services.payloads import PayloadStore
from application.services.publisher import RecordPublisher
from application.services.record_cache import RecordCache
from application.services.storage_audience import StorageAudience
from application.use_cases.celery_update import ApplyCeleryUpdate
from application.use_cases.create_evaluation import CreateEvaluation
from application.use_cases.delete_evaluation import DeleteEvaluation
from application.use_cases.evaluation_content import (
    AttachPayload,
    GetCompleteEvaluation,
    ReadPayload,
    UploadPayload,
)
from application.use_cases.events import ListEvents, RecordEvent
from application.use_cases.get_evaluation import GetEvaluation
from application.use_cases.list_evaluations import ListEvaluations
from application.use_cases.logs import AppendLog, GetEvaluationLogs, ReadLog
from application.use_cases.running_evaluations import (
    GetRunningEvaluation,
    ListRunningEvaluations,
    RebuildRunningRegistry,
)
from application.use_cases.statistics import GetStatistics
from application.use_cases.storage_report import StorageConfiguration
from application.use_cases.update_evaluation import ChangeApplier, RecordWriter, UpdateEvaluation
from domain.audit import AuditContext
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.limits import InputLimits
from domain.payload import PayloadKind, StorageThresholds
from domain.tenancy import DEFAULT_TENANT, TenantId, qualified_id
from infrastructure.memory.blob_store import MemoryBlobStore
from infrastructure.memory.cache import MemoryCache
from infrastructure.memory.evaluations import MemoryDatabase
from infrastructure.memory.log_tail import MemoryLogTail
from interfaces.providers import build_providers
from interfaces.settings import (
    FallbackBackend,
    LimitSettings,
    Settings,
    StorageBackend,
    StorageSettings,
)
from tests.factories import BASE_TIME, EvaluationFactory

# A configuration the settings accept (compression <= large), so every blob is zstd.
THRESHOLDS = StorageThresholds(large_file_threshold=64, compression_threshold=32, preview_size=10)
MAX_LOG_CHUNK_BYTES = 256


def memory_settings(thresholds: StorageThresholds = THRESHOLDS) -> Settings:
    """``STORAGE_BACKEND=memory`` with the small thresholds of these tests."""
    return Settings(
        storage=StorageSettings(
            backend=StorageBackend.MEMORY,
            fallback_backend=FallbackBackend.NONE,
            file_storage_path=Path("/tmp/files"),
            large_file_threshold=thresholds.large_file_threshold,
            compression_threshold=thresholds.compression_threshold,
            preview_size=thresholds.preview_size,
        ),
        limits=LimitSettings(request_bytes=1024, log_chunk_bytes=MAX_LOG_CHUNK_BYTES),
    )


class FixedClock:
    """``Clock`` that stands still until the test advances it."""

    def __init__(self, start: datetime = BASE_TIME) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


class FakeWorkerLogs:
    """The platform worker's latest batches (``logs:<id>:latest``), set by the test."""

    def __init__(self) -> None:
        self.batches: dict[str, str] = {}

    async def latest(self, tenant: TenantId, evaluation_id: EvaluationId) -> str | None:
        return self.batches.get(qualified_id(tenant, evaluation_id))

    async def forget(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        self.batches.pop(qualified_id(tenant, evaluation_id), None)


class StubInspector:
    """``BackendInspector`` answering a fixed state (for degraded/unavailable reports)."""

    def __init__(self, name: str, status: BackendState, error: str | None = None) -> None:
        self.name = name
        self._status = status
        self._error = error
        self.detailed_calls: list[bool] = []
        self.probe_calls = 0
        self.hang = False

    async def inspect(self, *, detailed: bool = False) -> BackendReport:
        self.detailed_calls.append(detailed)
        return BackendReport(name=self.name, type="stub", status=self._status, error=self._error)

    async def probe(self) -> BackendReport:
        self.probe_calls += 1
        if self.hang:
            await anyio.sleep_forever()
        return BackendReport(name=self.name, type="stub", status=self._status, error=self._error)


def memory_configuration(thresholds: StorageThresholds = THRESHOLDS) -> StorageConfiguration:
    """What ``storage_configuration(memory_settings())`` returns
    (``interfaces/storage_configuration.py``), written out by hand: the tests' own
    expectation of the memory deployment, independent of that function."""
    return StorageConfiguration(
        primary_backend="memory",
        fallback_backend="none",
        database="memory",
        cache="memory",
        caching_enabled=True,
        file_storage_path="/tmp/files",
        large_file_threshold=thresholds.large_file_threshold,
        compression_threshold=thresholds.compression_threshold,
        preview_size=thresholds.preview_size,
        cache_ttl=3600,
        max_request_bytes=1024,
        blob_backend="memory",
        cache_backend="memory",
        blob_urls={"file": "memory://"},
    )


class TestOverrides(Provider):
    """What a use-case test holds still or sets itself; the rest is the app's wiring."""

    clock = from_context(provides=Clock, scope=Scope.APP, override=True)
    worker_logs = from_context(provides=WorkerLogs, scope=Scope.APP, override=True)

    @provide(scope=Scope.APP, override=True)
    def log_tail(self) -> LogTail:
        return MemoryLogTail(max_bytes=64)

    @provide(scope=Scope.REQUEST, override=True)
    def audit_context(self) -> AuditContext:
        return AuditContext(actor="tester", request_id="req-1", tenant=DEFAULT_TENANT)


def use_case_container(
    clock: Clock,
    worker_logs: WorkerLogs,
    *providers: Provider,
    settings: Settings | None = None,
    context: dict[Any, object] | None = None,
) -> AsyncContainer:
    """The app's container for ``settings`` (default: ``memory_settings()``) with the
    test overrides, then ``providers`` (later overrides win) and their ``context``."""
    settings = settings or memory_settings()
    return make_async_container(
        *build_providers(settings),
        TestOverrides(),
        *providers,
        context={Settings: settings, Clock: clock, WorkerLogs: worker_logs, **(context or {})},
    )


class UseCases:
    """Every adapter and use case of one in-memory deployment: one request scope."""

    def __init__(self) -> None:
        self.clock = FixedClock()
        self.worker_logs = FakeWorkerLogs()
        self.configuration = memory_configuration()

    async def resolve(self, request: AsyncContainer) -> None:
        self.request = request
        get = request.get
        self.database = await get(MemoryDatabase)
        self.repository = await get(EvaluationRepository)
        self.queries = await get(EvaluationQueries)
        self.events = await get(EventLog)
        self.logs = await get(LogStore)
        self.uow = await get(UnitOfWork)
        self.cache = await get(MemoryCache)
        self.record_cache = await get(RecordCache)
        self.running = await get(RunningRegistry)
        self.blobs = await get(MemoryBlobStore)
        self.payloads = await get(PayloadStore)
        self.tail = await get(LogTail)
        self.publisher = await get(RecordPublisher)
        self.audit_log = await get(AuditLog)
        self.marks = await get(ReplayMarks)
        self.audit = await get(AuditTrail)
        self.limits = await get(InputLimits)
        self.writer = await get(RecordWriter)
        self.applier = await get(ChangeApplier)
        self.inspectors = await get(list[BackendInspector])
        self.create = await get(CreateEvaluation)
        self.get = await get(GetEvaluation)
        self.update = await get(UpdateEvaluation)
        self.delete = await get(DeleteEvaluation)
        self.list = await get(ListEvaluations)
        self.list_running = await get(ListRunningEvaluations)
        self.get_running = await get(GetRunningEvaluation)
        self.rebuild_running = await get(RebuildRunningRegistry)
        self.append_log = await get(AppendLog)
        self.read_log = await get(ReadLog)
        self.evaluation_logs = await get(GetEvaluationLogs)
        self.record_event = await get(RecordEvent)
        self.list_events = await get(ListEvents)
        self.celery = await get(ApplyCeleryUpdate)
        self.receive = await get(UploadPayload)
        self.attach = await get(AttachPayload)
        self.complete = await get(GetCompleteEvaluation)
        self.read_payload = await get(ReadPayload)
        self.statistics = await get(GetStatistics)
        self.audience = await get(StorageAudience)

    async def upload(
        self, evaluation_id: EvaluationId, kind: PayloadKind, chunks: AsyncIterator[bytes]
    ) -> Evaluation:
        """A streamed upload as the HTTP edge runs it: receive the blob, then attach it."""
        stored = await self.receive.receive(evaluation_id, kind, chunks)
        try:
            return await self.attach.execute(evaluation_id, kind, stored)
        except BaseException:
            await self.receive.discard(stored)
            raise

    async def seed(self, **fields: Any) -> Evaluation:
        """Store a factory-built record directly (no use case, nothing published)."""
        evaluation = EvaluationFactory.build(**fields)
        await self.repository.add(evaluation)
        return evaluation

    def stored(self, evaluation: Evaluation) -> Evaluation:
        """What the database holds for ``evaluation`` right now (deleted or not)."""
        return self.database.evaluations[evaluation.id]


@pytest.fixture
async def app() -> AsyncIterator[UseCases]:
    use_cases = UseCases()
    container = use_case_container(use_cases.clock, use_cases.worker_logs)
    try:
        async with container() as request:
            await use_cases.resolve(request)
            yield use_cases
    finally:
        await container.close()


if TYPE_CHECKING:
    from tests.use_cases.failover_world import World


@pytest.fixture
async def world() -> AsyncIterator["World"]:
    """The failover tests' deployment with an outage switch (tests/use_cases/failover_world.py).

    Imported when used: that module builds on this one.
    """
    from tests.use_cases.failover_world import running_world

    async with running_world() as built:
        yield built
