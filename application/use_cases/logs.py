import contextlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import anyio
import msgspec

from application.errors import (
    BackendUnavailableError,
    InvalidRequestError,
    require_found,
)
from application.ports.clock import Clock
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.log_store import LogStore
from application.ports.log_tail import LogTail
from application.ports.record_mirror import RecordMirror
from application.ports.unit_of_work import UnitOfWork
from application.ports.worker_logs import WorkerLogs
from application.services.audit_trail import AuditTrail
from application.services.record_cache import RecordCache
from domain.audit import AuditAction
from domain.evaluation import Evaluation, ensure_storable_text
from domain.identifiers import EvaluationId
from domain.limits import InputLimits
from domain.tenancy import TenantId
from domain.timeline import LogChunk, LogSlice
from domain.timestamps import as_utc


@dataclass(frozen=True, slots=True)
class AppendLog:
    """Append a chunk; the record's ``last_update`` and version move with it.

    The record changed, so its cache entry follows the versioned protocol of
    every record write (ADR 0002): a tombstone before the commit, the new
    version after it.
    """

    repository: EvaluationRepository
    logs: LogStore
    uow: UnitOfWork
    clock: Clock
    tail: LogTail
    audit: AuditTrail
    limits: InputLimits
    record_cache: RecordCache
    mirror: RecordMirror
    tenant: TenantId

    async def execute(
        self, evaluation_id: EvaluationId, content: str, last_update: datetime | None = None
    ) -> LogChunk:
        """``last_update``: when the writer produced the content (default: now)."""
        ensure_storable_text("content", content)
        self.limits.check_text("content", content, self.limits.log_chunk_bytes)
        evaluation = require_found(await self.repository.get(evaluation_id), evaluation_id)
        now = self.clock.now()
        stamp = now if last_update is None else as_utc(last_update)
        appended = await self.logs.append(evaluation_id, content, now, last_update=stamp)
        chunk = appended.chunk
        # ``evaluation`` is the record the append changed unless another write came between.
        after = None
        if appended.version == evaluation.version + 1:
            after = msgspec.structs.replace(evaluation, last_update=stamp, version=appended.version)
        await self.record_cache.before_commit(self.tenant, evaluation_id, appended.version)
        try:
            await self.audit.record(
                AuditAction.APPEND_LOG,
                evaluation_id,
                sizes={"content": chunk.size},
                version=appended.version,
            )
            await self.uow.commit()
        except BackendUnavailableError:
            if after is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await self.record_cache.restore(self.tenant, evaluation)
            raise
        await self.mirror.log(self.tenant, chunk)
        # Another write came between: the mirror takes the record as it is now.
        mirrored = after if after is not None else await self.repository.get(evaluation_id)
        if mirrored is not None:
            await self.mirror.record(self.tenant, mirrored)
        if after is not None:
            await self.record_cache.after_commit(self.tenant, after)
        if evaluation.status.is_active:
            # Before the 2xx, so the writer reads its own chunk from the tail.
            await self.tail.append(self.tenant, chunk)
        return chunk


async def _load(
    record_cache: RecordCache,
    repository: EvaluationRepository,
    tenant: TenantId,
    evaluation_id: EvaluationId,
) -> Evaluation:
    """The record, from the cache when it can (tailing then touches no database record)."""
    evaluation = await record_cache.get(tenant, evaluation_id)
    if evaluation is None:
        evaluation = await repository.get(evaluation_id)
    return require_found(evaluation, evaluation_id)


@dataclass(frozen=True, slots=True)
class ReadLog:
    """The log from ``offset``: from the tail while the evaluation runs, else the log store.

    Existence comes from the record cache when it can, so tailing a running
    evaluation touches neither the records nor the log chunks in the database.
    """

    repository: EvaluationRepository
    logs: LogStore
    record_cache: RecordCache
    tail: LogTail
    tenant: TenantId

    async def execute(self, evaluation_id: EvaluationId, offset: int = 0) -> LogSlice:
        _, log, _ = await self.with_record(evaluation_id, offset)
        return log

    async def with_record(
        self, evaluation_id: EvaluationId, offset: int = 0
    ) -> tuple[Evaluation, LogSlice, bool]:
        """The record, the log from ``offset``, and whether the log came from the tail."""
        if offset < 0:
            raise InvalidRequestError("offset", "must not be negative")
        evaluation = await _load(self.record_cache, self.repository, self.tenant, evaluation_id)
        if evaluation.status.is_active:
            latest = await self.tail.read(self.tenant, evaluation_id, offset)
            if latest is not None:
                return evaluation, latest, True
        return evaluation, await self.logs.read(evaluation_id, offset), False


class LogSource(StrEnum):
    TAIL = "tail"  # this service's log tail, beside the log store
    WORKER = "worker"  # the platform worker's latest batch
    STORE = "store"  # the log store (the database)
    JOURNAL = "journal"  # written while the database was away, not replayed yet


class EvaluationLogs(msgspec.Struct, frozen=True, kw_only=True):
    """An evaluation's log with its record, as a log viewer shows a run.

    ``log`` is this service's log from the asked offset; ``text`` is what to
    show as the log: ``log``'s content, or the worker's latest batch while the
    evaluation runs and the log is still empty (the batch is not part of the
    log, so ``log`` stays empty and tailing by offset stays exact).
    """

    evaluation: Evaluation
    log: LogSlice
    text: str
    source: LogSource


@dataclass(frozen=True, slots=True)
class GetEvaluationLogs:
    """The log and the record of one evaluation, as the platform's log endpoint answers.

    While the evaluation runs the log comes from the tail when it can, else the
    log store; a live evaluation whose log is empty shows the platform worker's
    latest batch when there is one.
    """

    read_log: ReadLog
    worker_logs: WorkerLogs
    tenant: TenantId

    async def execute(self, evaluation_id: EvaluationId, offset: int = 0) -> EvaluationLogs:
        evaluation, log, from_tail = await self.read_log.with_record(evaluation_id, offset)
        if from_tail:
            return EvaluationLogs(
                evaluation=evaluation, log=log, text=log.content, source=LogSource.TAIL
            )
        if evaluation.status.is_active and log.next_offset == 0:
            batch = await self.worker_logs.latest(self.tenant, evaluation_id)
            if batch:
                return EvaluationLogs(
                    evaluation=evaluation, log=log, text=batch, source=LogSource.WORKER
                )
        return EvaluationLogs(
            evaluation=evaluation, log=log, text=log.content, source=LogSource.STORE
        )
