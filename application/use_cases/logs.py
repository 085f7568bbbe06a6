from application.errors import EvaluationNotFoundError, InvalidRequestError
from application.ports.clock import Clock
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.log_store import LogStore
from application.ports.log_tail import LogTail
from application.ports.unit_of_work import UnitOfWork
from application.services.audit_trail import AuditTrail
from application.services.record_cache import RecordCache
from domain.audit import AuditAction
from domain.evaluation import ensure_storable_text
from domain.identifiers import EvaluationId
from domain.limits import InputLimits
from domain.timeline import LogChunk, LogSlice


class AppendLog:
    def __init__(
        self,
        repository: EvaluationRepository,
        logs: LogStore,
        uow: UnitOfWork,
        clock: Clock,
        tail: LogTail,
        audit: AuditTrail,
        limits: InputLimits,
    ) -> None:
        self._repository = repository
        self._logs = logs
        self._uow = uow
        self._clock = clock
        self._tail = tail
        self._audit = audit
        self._limits = limits

    async def execute(self, evaluation_id: EvaluationId, content: str) -> LogChunk:
        ensure_storable_text("content", content)
        self._limits.check_text("content", content, self._limits.log_chunk_bytes)
        evaluation = await self._repository.get(evaluation_id)
        if evaluation is None:
            raise EvaluationNotFoundError(evaluation_id)
        chunk = await self._logs.append(evaluation_id, content, self._clock.now())
        await self._audit.record(
            AuditAction.APPEND_LOG, evaluation_id, sizes={"content": chunk.size}
        )
        await self._uow.commit()
        if evaluation.status.is_active:
            # Before the 2xx, so the writer reads its own chunk from the tail.
            await self._tail.append(chunk)
        return chunk


class ReadLog:
    """The log from ``offset``: from the tail while the evaluation runs, else the log store.

    Existence comes from the record cache when it can, so tailing a running
    evaluation touches neither the records nor the log chunks in the database.
    """

    def __init__(
        self,
        repository: EvaluationRepository,
        logs: LogStore,
        record_cache: RecordCache,
        tail: LogTail,
    ) -> None:
        self._repository = repository
        self._logs = logs
        self._record_cache = record_cache
        self._tail = tail

    async def execute(self, evaluation_id: EvaluationId, offset: int = 0) -> LogSlice:
        if offset < 0:
            raise InvalidRequestError("offset", "must not be negative")
        evaluation = await self._record_cache.get(evaluation_id)
        if evaluation is None:
            evaluation = await self._repository.get(evaluation_id)
        if evaluation is None:
            raise EvaluationNotFoundError(evaluation_id)
        if evaluation.status.is_active:
            latest = await self._tail.read(evaluation_id, offset)
            if latest is not None:
                return latest
        return await self._logs.read(evaluation_id, offset)
