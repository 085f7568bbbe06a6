"""Use cases wired over the in-memory adapters, the way ``interfaces/providers.py`` wires them.

No HTTP and no container: each test gets a fresh ``UseCases`` with one shared
``MemoryDatabase``, an in-process cache and running registry, an in-memory
blob store and a clock that only moves when the test moves it. The payload
thresholds are small so that "large" outputs are a few dozen bytes.
"""

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import anyio
import pytest

from application.ports.backend_inspector import BackendInspector
from application.queries import BackendReport, BackendState
from application.services.audit_trail import AuditContext, AuditTrail
from application.services.payloads import PayloadStore
from application.services.publisher import RecordPublisher
from application.services.record_cache import RecordCache
from application.services.record_writer import RecordWriter
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
from application.use_cases.update_evaluation import ChangeApplier, UpdateEvaluation
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.limits import InputLimits
from domain.payload import PayloadKind, StorageThresholds
from infrastructure.memory.audit import MemoryAuditLog
from infrastructure.memory.blob_store import MemoryBlobInspector, MemoryBlobStore
from infrastructure.memory.cache import MemoryCache, MemoryCacheInspector
from infrastructure.memory.evaluations import (
    MemoryDatabase,
    MemoryDatabaseInspector,
    MemoryEvaluationQueries,
    MemoryEvaluationRepository,
)
from infrastructure.memory.log_tail import MemoryLogTail
from infrastructure.memory.replay_marks import MemoryReplayMarks
from infrastructure.memory.running_registry import MemoryRunningRegistry
from infrastructure.memory.timeline import MemoryEventLog, MemoryLogStore
from infrastructure.memory.unit_of_work import MemoryUnitOfWork
from tests.factories import BASE_TIME, EvaluationFactory

# A configuration the settings accept (compression <= large), so every blob is zstd.
THRESHOLDS = StorageThresholds(large_file_threshold=64, compression_threshold=32, preview_size=10)
MAX_LOG_CHUNK_BYTES = 256


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

    async def latest(self, evaluation_id: EvaluationId) -> str | None:
        return self.batches.get(evaluation_id)


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
    """What ``STORAGE_BACKEND=memory`` configures (``interfaces/providers.py``)."""
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


class UseCases:
    """Every adapter and use case of one in-memory deployment."""

    def __init__(self, thresholds: StorageThresholds = THRESHOLDS) -> None:
        self.clock = FixedClock()
        self.database = MemoryDatabase()
        self.repository = MemoryEvaluationRepository(self.database)
        self.queries = MemoryEvaluationQueries(self.database)
        self.events = MemoryEventLog(self.database)
        self.logs = MemoryLogStore(self.database)
        self.uow = MemoryUnitOfWork()
        self.cache = MemoryCache(ttl_seconds=3600)
        self.record_cache = RecordCache(self.cache)
        self.running = MemoryRunningRegistry()
        self.blobs = MemoryBlobStore()
        self.payloads = PayloadStore(self.blobs, thresholds)
        self.tail = MemoryLogTail(max_bytes=64)
        self.publisher = RecordPublisher(self.record_cache, self.running, self.tail)
        self.audit_log = MemoryAuditLog()
        self.marks = MemoryReplayMarks()
        self.audit = AuditTrail(
            self.audit_log,
            self.clock,
            AuditContext(actor="tester", request_id="req-1"),
            self.marks,
        )
        self.limits = InputLimits(log_chunk_bytes=MAX_LOG_CHUNK_BYTES)
        self.writer = RecordWriter(
            self.repository, self.uow, self.clock, self.payloads, self.publisher, self.audit
        )
        self.applier = ChangeApplier(self.clock, self.payloads, self.limits)
        self.inspectors: list[BackendInspector] = [
            MemoryDatabaseInspector(self.database),
            MemoryBlobInspector(self.blobs),
            MemoryCacheInspector(self.cache),
        ]

        self.create = CreateEvaluation(
            self.repository, self.uow, self.clock, self.publisher, self.audit, self.limits
        )
        self.get = GetEvaluation(self.repository, self.record_cache)
        self.update = UpdateEvaluation(self.writer, self.applier)
        self.delete = DeleteEvaluation(self.writer, self.clock)
        self.list = ListEvaluations(self.queries, self.limits)
        self.list_running = ListRunningEvaluations(self.running, self.queries)
        self.get_running = GetRunningEvaluation(self.running, self.repository)
        self.rebuild_running = RebuildRunningRegistry(self.running, self.queries)
        self.append_log = AppendLog(
            self.repository,
            self.logs,
            self.uow,
            self.clock,
            self.tail,
            self.audit,
            self.limits,
            self.record_cache,
        )
        self.read_log = ReadLog(self.repository, self.logs, self.record_cache, self.tail)
        self.worker_logs = FakeWorkerLogs()
        self.evaluation_logs = GetEvaluationLogs(self.read_log, self.worker_logs)
        self.record_event = RecordEvent(
            self.repository, self.events, self.uow, self.clock, self.audit, self.limits
        )
        self.list_events = ListEvents(self.repository, self.events)
        self.celery = ApplyCeleryUpdate(self.writer, self.applier)
        self.receive = UploadPayload(self.writer, self.payloads, self.uow)
        self.attach = AttachPayload(self.writer)
        self.configuration = memory_configuration(thresholds)
        self.complete = GetCompleteEvaluation(
            self.repository, self.payloads, self.logs, self.events, self.configuration
        )
        self.read_payload = ReadPayload(self.repository, self.payloads, self.uow)
        self.statistics = GetStatistics(self.queries, self.clock, self.configuration)

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
def app() -> UseCases:
    return UseCases()
