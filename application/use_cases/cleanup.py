"""Retention: old and soft-deleted evaluations removed for good, in resumable batches."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import msgspec

from application.ports.evaluation_keys import EvaluationKeys
from application.ports.evaluation_maintenance import (
    EvaluationMaintenance,
    PurgeCursor,
    PurgeSelection,
)
from application.ports.log_tail import LogTail
from application.ports.record_mirror import RecordMirror
from application.ports.running_registry import RunningRegistry
from application.ports.unit_of_work import UnitOfWork
from application.services.audit_trail import AuditTrail
from application.services.payloads import PayloadStore
from application.services.record_cache import RecordCache
from domain.audit import AuditAction
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId


class RemovalCounts(msgspec.Struct, kw_only=True):
    """What a removal took away (records with their events, log chunks and blobs)."""

    evaluations: int = 0
    events: int = 0
    log_chunks: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    batches: int = 0


class CleanupReport(RemovalCounts, kw_only=True):
    """Running totals of a cleanup (what would go, with ``dry_run``)."""

    dry_run: bool


@dataclass(frozen=True, slots=True)
class CleanupEvaluations:
    """Remove the records a ``PurgeSelection`` picks, with blobs, events, logs and cache keys.

    Each batch is one transaction: the rows are deleted (still matching the
    selection, so a record changed meanwhile is kept), then the blobs of the
    deleted records, then the batch commits, then the cache, running registry
    and log tail forget them. Interrupted anywhere, a rerun finds whatever was
    not committed and finishes it: at worst a record whose blobs are already
    gone waits for the rerun; no blob is ever left without a record. ``stop`` is
    asked before each batch: once it answers True the cleanup ends there, never
    inside a batch's transaction.
    """

    maintenance: EvaluationMaintenance
    uow: UnitOfWork
    payloads: PayloadStore
    record_cache: RecordCache
    running: RunningRegistry
    tail: LogTail
    audit: AuditTrail
    mirror: RecordMirror
    keys: EvaluationKeys
    tenant: TenantId

    async def execute(
        self,
        selection: PurgeSelection,
        *,
        batch_size: int = 200,
        dry_run: bool = False,
        on_batch: Callable[[CleanupReport], None] | None = None,
        stop: Callable[[], bool] | None = None,
        before_purge: Callable[[list[EvaluationId]], Awaitable[None]] | None = None,
    ) -> CleanupReport:
        """``before_purge`` is given each batch's ids before its transaction (erasure)."""
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        report = CleanupReport(dry_run=dry_run)
        after: PurgeCursor | None = None
        while stop is None or not stop():
            batch = await self.maintenance.purge_candidates(selection, batch_size, after)
            if not batch:
                break
            after = PurgeCursor(batch[-1].updated_at, batch[-1].id)
            if dry_run:
                await self._count(batch, report)
            else:
                ids = [evaluation.id for evaluation in batch]
                if before_purge is not None:
                    await before_purge(ids)
                await self.purge(ids, selection, report)
            report.batches += 1
            if on_batch is not None:
                on_batch(report)
            if len(batch) < batch_size:
                break
        return report

    async def _count(self, batch: list[Evaluation], report: CleanupReport) -> None:
        report.evaluations += len(batch)
        for evaluation in batch:
            for entry in await self.payloads.blobs_of(self.tenant, evaluation.id):
                report.blobs += 1
                report.blob_bytes += entry.size

    async def purge(
        self, ids: Sequence[EvaluationId], selection: PurgeSelection, report: CleanupReport
    ) -> None:
        """Remove those of ``ids`` that match ``selection`` (one transaction), adding to
        ``report``."""
        purged = await self.maintenance.purge(ids, selection)
        blobs = blob_bytes = 0
        for evaluation_id in purged.evaluation_ids:
            sizes = {"blobs": 0, "blob_bytes": 0}
            for entry in await self.payloads.blobs_of(self.tenant, evaluation_id):
                await self.payloads.discard(entry.key)
                sizes["blobs"] += 1
                sizes["blob_bytes"] += entry.size
            await self.audit.record(AuditAction.PURGE, evaluation_id, sizes=sizes)
            # Like the blobs, before the commit: a copy left behind would bring the record
            # back at a rebuild; one removed for a batch that then fails is copied again
            # from the database by ``fsck --fix`` on the file backend.
            await self.mirror.forget(self.tenant, evaluation_id)
            blobs += sizes["blobs"]
            blob_bytes += sizes["blob_bytes"]
        await self.uow.commit()
        # Their evaluation keys (crypto-shredding, ADR 0033): a copy of a purged evaluation
        # made anywhere no longer opens. After the commit: the key table is written on a
        # connection of its own, which SQLite would make wait for this transaction's lock;
        # and a record the purge kept must keep its key.
        await self.keys.of(self.tenant).destroy(purged.evaluation_ids)
        for evaluation_id in purged.evaluation_ids:
            await self.record_cache.forget(self.tenant, evaluation_id)
            await self.running.untrack(self.tenant, evaluation_id)
            await self.tail.drop(self.tenant, evaluation_id)
        report.evaluations += len(purged.evaluation_ids)
        report.events += purged.events
        report.log_chunks += purged.log_chunks
        report.blobs += blobs
        report.blob_bytes += blob_bytes
