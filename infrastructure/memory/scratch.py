"""``ScratchStore`` on the memory adapters: the journal's read model.

Built per view and thrown away; its blobs stay in memory (an output shown while
the journal is pending is the scratch copy), and it never touches the primary,
the cache or the real blob store.
"""

import copy
from collections.abc import Iterable
from typing import TypeVar

from application.intents import JournalEntry
from application.ports.clock import Clock
from application.services.audit_trail import AuditContext, AuditTrail
from application.services.intent_runner import IntentRunner, WriteResult
from application.services.payloads import PayloadStore
from application.services.pinned_clock import pinned
from application.services.publisher import RecordPublisher
from application.services.record_cache import RecordCache
from application.services.record_writer import RecordWriter
from application.use_cases.celery_update import ApplyCeleryUpdate
from application.use_cases.create_evaluation import CreateEvaluation
from application.use_cases.delete_evaluation import DeleteEvaluation
from application.use_cases.evaluation_content import AttachPayload
from application.use_cases.events import RecordEvent
from application.use_cases.logs import AppendLog
from application.use_cases.update_evaluation import ChangeApplier, UpdateEvaluation
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.limits import InputLimits
from domain.payload import StorageThresholds
from domain.timeline import EvaluationEvent, LogSlice
from infrastructure.memory.audit import MemoryAuditLog
from infrastructure.memory.blob_store import MemoryBlobStore
from infrastructure.memory.evaluations import MemoryDatabase, MemoryEvaluationRepository
from infrastructure.memory.log_tail import NoLogTail
from infrastructure.memory.running_registry import MemoryRunningRegistry
from infrastructure.memory.timeline import MemoryEventLog, MemoryLogStore
from infrastructure.memory.unit_of_work import MemoryUnitOfWork

T = TypeVar("T")


class _NoMarks:
    """Scratch writes are never replayed: nothing to mark."""

    async def is_applied(self, entry_id: str) -> bool:  # noqa: ARG002
        return False

    async def mark(self, entry_id: str) -> None:  # noqa: ARG002
        return None

    async def forget(self, entry_ids: Iterable[str]) -> None:  # noqa: ARG002
        return None


class _Fixed:
    """``UseCaseLocator`` over use cases built up front (a scratch store uses most)."""

    def __init__(self, *built: object) -> None:
        self._built = {type(item): item for item in built}

    async def get(self, kind: type[T], /) -> T:
        found = self._built[kind]
        assert isinstance(found, kind)
        return found


class MemoryScratchStore:
    def __init__(self, clock: Clock, thresholds: StorageThresholds, limits: InputLimits) -> None:
        self._db = MemoryDatabase()
        repository = MemoryEvaluationRepository(self._db)
        uow = MemoryUnitOfWork()
        payloads = PayloadStore(MemoryBlobStore(), thresholds)
        no_cache = RecordCache(None)
        publisher = RecordPublisher(no_cache, MemoryRunningRegistry(), NoLogTail())
        audit = AuditTrail(MemoryAuditLog(), clock, AuditContext(actor="journal"), _NoMarks())
        writer = RecordWriter(repository, uow, clock, payloads, publisher, audit)
        applier = ChangeApplier(clock, payloads, limits)
        self._events = MemoryEventLog(self._db)
        self._logs = MemoryLogStore(self._db)
        self._runner = IntentRunner(
            _Fixed(
                CreateEvaluation(repository, uow, clock, publisher, audit, limits),
                UpdateEvaluation(writer, applier),
                DeleteEvaluation(writer, clock),
                ApplyCeleryUpdate(writer, applier),
                AppendLog(repository, self._logs, uow, clock, NoLogTail(), audit, limits, no_cache),
                RecordEvent(repository, self._events, uow, clock, audit, limits),
                AttachPayload(writer),
            )
        )

    async def seed(self, evaluation: Evaluation) -> None:
        self._db.evaluations[evaluation.id] = copy.deepcopy(evaluation)

    async def apply(self, entry: JournalEntry) -> WriteResult:
        with pinned(entry.at):
            return await self._runner.run(
                EvaluationId(entry.evaluation_id), entry.intent, acknowledged=True
            )

    async def get(self, evaluation_id: EvaluationId) -> Evaluation | None:
        found = self._db.live(evaluation_id)
        return None if found is None else copy.deepcopy(found)

    async def events(self, evaluation_id: EvaluationId) -> list[EvaluationEvent]:
        return await self._events.list(evaluation_id)

    async def log(self, evaluation_id: EvaluationId, offset: int) -> LogSlice:
        return await self._logs.read(evaluation_id, offset)


class MemoryScratchStores:
    def __init__(self, clock: Clock, thresholds: StorageThresholds, limits: InputLimits) -> None:
        self._clock = clock
        self._thresholds = thresholds
        self._limits = limits

    def open(self) -> MemoryScratchStore:
        return MemoryScratchStore(self._clock, self._thresholds, self._limits)
