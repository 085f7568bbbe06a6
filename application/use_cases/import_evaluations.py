"""Import: one exported evaluation stored whole on this instance's backends; and restore:
one evaluation of a record mirror stored back whole, its payloads where they are."""

from dataclasses import dataclass

import msgspec

from application.errors import DuplicateEvaluationError
from application.ports.clock import Clock
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.event_log import EventLog
from application.ports.log_store import LogStore
from application.ports.record_mirror import MirroredEvaluation, RecordMirror
from application.ports.unit_of_work import UnitOfWork
from application.services.audit_trail import AuditTrail
from application.services.payloads import PayloadStore
from application.services.publisher import RecordPublisher
from application.use_cases.export_evaluations import ArchivedEvaluation
from domain.audit import AuditAction
from domain.evaluation import Evaluation, ensure_storable_json, ensure_storable_text
from domain.identifiers import parse_evaluation_id
from domain.tenancy import TenantId
from domain.timeline import EvaluationEvent, LogChunk

# Log chunks are stored at most this big (the append limit of the API).
LOG_CHUNK_BYTES = 1024 * 1024


def split_utf8(text: str, max_bytes: int) -> list[str]:
    """``text`` in pieces of at most ``max_bytes`` UTF-8 bytes, never splitting a character."""
    data = text.encode("utf-8")
    pieces: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + max_bytes, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        pieces.append(data[start:end].decode("utf-8"))
        start = end
    return pieces


@dataclass(frozen=True, slots=True)
class ImportEvaluation:
    """Store an exported evaluation unless its id exists here (even soft-deleted).

    Idempotent: a rerun of the same file skips what it already imported. The
    record keeps its id, timestamps and version; output and error are routed by
    this instance's thresholds; events keep their ids; the log is appended anew,
    so its byte offsets are the exported ones. All of it commits at once.
    """

    repository: EvaluationRepository
    events: EventLog
    logs: LogStore
    uow: UnitOfWork
    payloads: PayloadStore
    publisher: RecordPublisher
    clock: Clock
    audit: AuditTrail
    mirror: RecordMirror
    tenant: TenantId

    async def execute(self, archived: ArchivedEvaluation) -> bool:
        """Whether the evaluation was imported (``False``: it was already here)."""
        record = archived.record
        evaluation_id = parse_evaluation_id(record.id)
        ensure_storable_text("code", record.code)
        ensure_storable_json("metadata", record.metadata)
        if await self.repository.get(evaluation_id) is not None:
            return False
        evaluation = msgspec.structs.replace(record, id=evaluation_id, output=None, error=None)
        if archived.output is not None:
            evaluation.output = await self.payloads.store(
                self.tenant, evaluation_id, "output", archived.output
            )
        if archived.error is not None:
            evaluation.error = await self.payloads.store(
                self.tenant, evaluation_id, "error", archived.error
            )
        try:
            await self._store(evaluation, archived.events, archived.log, AuditAction.IMPORT)
            await self.uow.commit()
        except DuplicateEvaluationError:
            await self.uow.rollback()
            await self._discard_blobs(evaluation)
            return False
        except BaseException:
            await self.uow.rollback()
            await self._discard_blobs(evaluation)
            raise
        await self._publish(evaluation, archived.events, archived.log)
        return True

    async def restore(self, mirrored: MirroredEvaluation, *, copy: bool = False) -> bool:
        """Store a mirrored evaluation as it was committed (``False``: it is already here).

        Its payload pointers are kept: the blobs are where the mirror found them, and
        a failed restore leaves them (they are the tree's, not this run's).
        """
        return (await self.restore_all([mirrored], copy=copy))[0]

    async def restore_all(
        self, batch: list[MirroredEvaluation], *, copy: bool = False
    ) -> list[bool]:
        """``restore`` for each of ``batch``, in one transaction: one commit (one fsync)
        for the lot. A failure rolls the whole batch back and is raised (a caller then
        restores the batch one by one to find the culprit); ids already here are skipped.
        ``copy``: the batch comes from another tree than this service's mirror, so the
        mirror takes its events and log as well as its records.
        """
        for mirrored in batch:  # all checked before any is stored: a refusal stores nothing
            ensure_storable_text("code", mirrored.record.code)
            ensure_storable_json("metadata", mirrored.record.metadata)
        restored: list[bool] = []
        try:
            for mirrored in batch:
                evaluation = mirrored.record
                present = await self.repository.get(evaluation.id) is not None
                if not present:
                    await self._store(
                        evaluation, mirrored.events, mirrored.log, AuditAction.RESTORE
                    )
                restored.append(not present)
            await self.uow.commit()
        except DuplicateEvaluationError:
            await self.uow.rollback()
            if len(batch) > 1:
                raise
            return [False]  # soft-deleted here: ``get`` does not see it, the insert does
        except BaseException:
            await self.uow.rollback()
            raise
        for mirrored, done in zip(batch, restored, strict=True):
            if done and copy:
                await self._publish(mirrored.record, mirrored.events, mirrored.log)
            elif done:  # the copy is where it came from: the cache and registry follow
                await self.publisher.after_commit(self.tenant, mirrored.record)
        return restored

    async def _publish(
        self, evaluation: Evaluation, events: list[EvaluationEvent], log: str
    ) -> None:
        """Cache, registry and the mirror's copy (the record through the publisher)."""
        await self.publisher.after_commit(self.tenant, evaluation)
        for event in events:
            copied = msgspec.structs.replace(event, evaluation_id=evaluation.id)
            await self.mirror.event(self.tenant, copied)
        if log:
            now = self.clock.now()
            await self.mirror.log(
                self.tenant,
                LogChunk(evaluation_id=evaluation.id, offset=0, content=log, created_at=now),
            )

    async def _store(
        self,
        evaluation: Evaluation,
        events: list[EvaluationEvent],
        log: str,
        action: AuditAction,
    ) -> None:
        # First: a duplicate touches nothing else. Live until its timeline is in: a deleted
        # record takes no events or logs.
        await self.repository.add(msgspec.structs.replace(evaluation, deleted_at=None))
        await self.payloads.write_snapshot(self.tenant, evaluation)
        for event in events:
            await self.events.append(msgspec.structs.replace(event, evaluation_id=evaluation.id))
        now = self.clock.now()
        version = evaluation.version
        for piece in split_utf8(log, LOG_CHUNK_BYTES):
            version = (await self.logs.append(evaluation.id, piece, now, last_update=now)).version
        if version != evaluation.version or evaluation.deleted_at is not None:
            # Each append moved the record on (its ``last_update``): put it back as archived.
            await self.repository.update(evaluation, expected_version=version)
        await self.audit.record(
            action,
            evaluation.id,
            sizes={
                "code": len(evaluation.code.encode()),
                "output": 0 if evaluation.output is None else evaluation.output.size,
                "error": 0 if evaluation.error is None else evaluation.error.size,
                "log": len(log.encode()),
                "events": len(events),
            },
            status=evaluation.status,
            version=evaluation.version,
        )

    async def _discard_blobs(self, evaluation: Evaluation) -> None:
        """Payload blobs written for a record that did not commit (fresh tokens: never shared)."""
        for payload in (evaluation.output, evaluation.error):
            if payload is not None and payload.key is not None:
                await self.payloads.discard(payload.key)
