"""Erasure by data subject: every evaluation tagged with a subject removed everywhere."""

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import msgspec

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.failover.idempotency import IdempotencyKeys
from application.intents import CreateIntent, JournalEntry, UpdateIntent
from application.ports.evaluation_keys import EvaluationKeys
from application.ports.evaluation_maintenance import (
    EvaluationMaintenance,
    PurgeCursor,
    PurgeSelection,
    SubjectTag,
)
from application.ports.event_log import EventLog
from application.ports.journal import Journal
from application.ports.log_store import LogStore
from application.ports.log_tail import LogTail
from application.ports.record_mirror import RecordMirror
from application.ports.running_registry import RunningRegistry
from application.ports.unit_of_work import UnitOfWork
from application.ports.worker_logs import WorkerLogs
from application.services.audit_trail import AuditTrail
from application.services.payloads import PayloadStore
from application.services.record_cache import RecordCache
from application.use_cases.cleanup import CleanupEvaluations, CleanupReport, RemovalCounts
from domain.audit import AuditAction
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.payload import StoredPayload
from domain.subjects import check_subject, subject_digest
from domain.tenancy import TenantId
from domain.timeline import EvaluationEvent

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class SubjectField:
    """The metadata key that names an evaluation's data subject (``SUBJECT_METADATA_KEY``)."""

    key: str

    def tag(self, subject: str) -> SubjectTag:
        return SubjectTag(key=self.key, value=check_subject(subject))


class ErasureReport(RemovalCounts, kw_only=True):
    """What one erasure removed; ``complete``: nothing of the subject is left."""

    subject_sha256: str
    complete: bool = False
    journal_entries: int = 0
    idempotency_answers: int = 0
    evaluation_keys: int = 0  # destroyed (crypto-shredding, ADR 0033)

    def add(self, cleanup: CleanupReport, beside: "_Beside") -> None:
        """The cleanup's running totals, and the blobs removed before its transactions."""
        self.evaluations = cleanup.evaluations
        self.events = cleanup.events
        self.log_chunks = cleanup.log_chunks
        self.blobs = beside.blobs + cleanup.blobs
        self.blob_bytes = beside.blob_bytes + cleanup.blob_bytes
        self.batches = cleanup.batches


@dataclass
class _Beside:
    blobs: int = 0
    blob_bytes: int = 0


def tags(entry: JournalEntry, subject: SubjectTag) -> bool:
    """Whether a journaled write gives its record ``subject`` (a create or an update)."""
    intent = entry.intent
    if isinstance(intent, CreateIntent):
        return subject.tags(intent.new.metadata)
    if isinstance(intent, UpdateIntent) and isinstance(intent.changes.metadata, dict):
        return subject.tags(intent.changes.metadata)
    return False


@dataclass(frozen=True, slots=True)
class EraseSubject:
    """Remove every evaluation of one subject from every place that holds it.

    Holding the failover journal's replay turn so no replay brings a record back meanwhile,
    batch by batch: the evaluation keys go first (``EvaluationKeys.destroy``: with
    ``ENCRYPTION_SHREDDING=on`` every copy sealed under them, backups and copies the service
    cannot reach included, is unreadable from then on, whatever the rest manages;
    crypto-shredding, ADR 0033), then the journal entries, the kept ``Idempotency-Key``
    answers and the Redis keys of each record (outside the transaction); then the cleanup's
    purge: the rows (record, events, log chunks, search texts) with a ``purge`` audit entry
    each, the blobs and the mirror's copy of the rows it removed, the commit, and the cache
    once more (a read may have filled it meanwhile). Whatever a crash interrupts, a rerun
    finds the records still there and finishes them: nothing is removed from the database
    before what lies beside it. One ``erase`` entry records the run: the subject's digest
    and the counts, never the subject or the data.
    """

    field: SubjectField
    keys: EvaluationKeys
    cleanup: CleanupEvaluations
    maintenance: EvaluationMaintenance
    journal: Journal
    idempotency: IdempotencyKeys
    payloads: PayloadStore
    mirror: RecordMirror
    record_cache: RecordCache
    running: RunningRegistry
    tail: LogTail
    worker_logs: WorkerLogs
    audit: AuditTrail
    uow: UnitOfWork
    tenant: TenantId

    async def execute(
        self,
        subject: str,
        *,
        batch_size: int = 200,
        limit: int | None = None,
        on_batch: Callable[[ErasureReport], None] | None = None,
    ) -> ErasureReport:
        """Erase ``subject``'s evaluations, at most ``limit`` of them (``None``: all);
        ``complete`` in the report says whether any is left for another call."""
        tag = self.field.tag(subject)
        if limit is not None and limit <= 0:
            raise ValueError("limit must be positive")
        report = ErasureReport(subject_sha256=subject_digest(subject))
        beside = _Beside()
        async with self.journal.replaying() as turn:
            if not turn and await self.journal.has_pending():
                raise BackendUnavailableError(
                    Backend.FALLBACK,
                    "the failover journal is being replayed; erase again once it is done",
                )
            pending = [e for e in await self.journal.pending() if e.tenant == self.tenant]
            selection = PurgeSelection.everything_of(tag)

            async def before(ids: list[EvaluationId]) -> None:
                report.evaluation_keys += await self.keys.of(self.tenant).destroy(ids)
                await self._forget_beside(ids, pending, report)

            def counted(cleanup: CleanupReport) -> None:
                report.add(cleanup, beside)
                if on_batch is not None:
                    on_batch(report)

            size = batch_size if limit is None else min(batch_size, limit)
            cleanup = await self.cleanup.execute(
                selection,
                batch_size=size,
                on_batch=counted,
                stop=lambda: limit is not None and report.evaluations >= limit,
                before_purge=before,
            )
            # Records only the journal gives the subject (created or tagged while the
            # database was away): their entries go, and what the database holds of them.
            journaled = sorted({EvaluationId(e.evaluation_id) for e in pending if tags(e, tag)})
            if journaled:
                report.evaluation_keys += await self.keys.of(self.tenant).destroy(journaled)
                # Blobs of records the database may not hold (uploads while it was
                # away): before the entries, so a rerun still finds these ids.
                await self._discard_blobs(journaled, beside)
                await before(journaled)
                await self.cleanup.purge(journaled, PurgeSelection.everything_of(None), cleanup)
                report.add(cleanup, beside)
            left = await self.maintenance.purge_candidates(selection, 1)
            report.complete = not left
        await self.audit.record(
            AuditAction.ERASE,
            None,
            fields=(f"subject_sha256:{report.subject_sha256}",),
            sizes=_sizes(report),
        )
        await self.uow.commit()
        await self.maintenance.scrub()
        return report

    async def _forget_beside(
        self, ids: Sequence[EvaluationId], pending: list[JournalEntry], report: ErasureReport
    ) -> None:
        """What lies beside the rows of ``ids`` and the purge does not remove: gone
        before the rows, so a rerun still finds the ids."""
        doomed = set(ids)
        entries = {entry.id for entry in pending if entry.evaluation_id in doomed}
        if entries:
            report.journal_entries += len(await self.journal.discard(entries))
        needles = [_encoder.encode(evaluation_id) for evaluation_id in ids]
        report.idempotency_answers += await self.idempotency.forget_answers_with(
            self.tenant, needles
        )
        for evaluation_id in ids:
            await self.record_cache.forget(self.tenant, evaluation_id)
            await self.running.untrack(self.tenant, evaluation_id)
            await self.tail.drop(self.tenant, evaluation_id)
            await self.worker_logs.forget(self.tenant, evaluation_id)

    async def _discard_blobs(self, ids: Sequence[EvaluationId], beside: _Beside) -> None:
        for evaluation_id in ids:
            for entry in await self.payloads.blobs_of(self.tenant, evaluation_id):
                await self.payloads.discard(entry.key)
                beside.blobs += 1
                beside.blob_bytes += entry.size
            await self.mirror.forget(self.tenant, evaluation_id)


def _sizes(report: ErasureReport) -> dict[str, int]:
    """The report's counts, for the audit entry (``batches`` says nothing erased)."""
    counts = msgspec.structs.asdict(report)
    return {
        name: value for name, value in counts.items() if type(value) is int and name != "batches"
    }


@dataclass(frozen=True, slots=True)
class HeldEvaluation:
    """One evaluation of a subject, as the backup export holds it (``ArchivedEvaluation``)
    but with the output and error as streams of UTF-8 bytes, read from their blob when
    they are large: an answer never holds a whole large payload."""

    record: Evaluation
    output: AsyncIterator[bytes] | None
    error: AsyncIterator[bytes] | None
    log: str
    events: list[EvaluationEvent]


@dataclass(frozen=True, slots=True)
class ExportSubject:
    """Everything held about one subject: each evaluation whole (record, full output and
    error, log, events), soft-deleted ones too, oldest change first, batch by batch."""

    field: SubjectField
    maintenance: EvaluationMaintenance
    payloads: PayloadStore
    logs: LogStore
    events: EventLog

    def tag(self, subject: str) -> SubjectTag:
        """Checked before the answer starts, so bad input is a 4xx, never a cut stream."""
        return self.field.tag(subject)

    async def execute(
        self, subject: SubjectTag, batch_size: int = 100
    ) -> AsyncIterator[HeldEvaluation]:
        selection = PurgeSelection.everything_of(subject)
        after: PurgeCursor | None = None
        while True:
            batch = await self.maintenance.purge_candidates(selection, batch_size, after)
            for evaluation in batch:
                yield HeldEvaluation(
                    record=msgspec.structs.replace(evaluation, output=None, error=None),
                    output=self._stream(evaluation.output),
                    error=self._stream(evaluation.error),
                    log=(await self.logs.read(evaluation.id)).content,
                    events=await self.events.list(evaluation.id),
                )
            if len(batch) < batch_size:
                return
            after = PurgeCursor(batch[-1].updated_at, batch[-1].id)

    def _stream(self, payload: StoredPayload | None) -> AsyncIterator[bytes] | None:
        return None if payload is None else self.payloads.stream(payload)
