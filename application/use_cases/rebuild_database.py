"""``rebuild-database``: a lost database restored from the record mirror's file tree; and
the other way, copies the tree lacks written again from the database."""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import msgspec

from application.errors import ApplicationError, WriteConflictError
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.event_log import EventLog
from application.ports.log_store import LogStore
from application.ports.record_mirror import (
    MirroredEvaluation,
    MirrorReader,
    RecordMirror,
    Unreadable,
)
from application.services.payloads import PayloadStore
from application.use_cases.import_evaluations import ImportEvaluation
from domain.blob_paths import evaluation_prefix
from domain.errors import DomainError
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from domain.timeline import LogChunk


class RebuildReport(msgspec.Struct, kw_only=True):
    """What a rebuild restored, found already there, and could not read (path and why)."""

    restored: int = 0
    skipped: int = 0
    events: int = 0
    log_bytes: int = 0
    unreadable: list[Unreadable] = msgspec.field(default_factory=list)
    problems: list[str] = msgspec.field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unreadable and not self.problems


# A scope (and transaction) of its own for each batch of restores, acting for the tenant
# whose evaluations it restores.
RestoreScope = Callable[
    [TenantId], AbstractAsyncContextManager[tuple[ImportEvaluation, PayloadStore]]
]
BATCH = 200
# A copy whose restore the database ended for a concurrent writer (a deadlock: nothing
# written) is tried this many times before it is reported.
RESTORE_ATTEMPTS = 3


async def rebuild_database(
    mirror: MirrorReader,
    scope: RestoreScope,
    on_progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH,
    *,
    copy: bool = False,
) -> RebuildReport:
    """Restore every evaluation of ``mirror`` that the database does not hold, each into
    the tenant whose copy it is.

    Idempotent: an evaluation already present (even soft-deleted) is skipped, so an
    interrupted rebuild is simply run again. Evaluations are restored ``batch_size`` to
    a transaction; a batch that fails is restored again one by one, so a copy the
    database refuses is reported alone (one it ends for a concurrent writer is tried
    ``RESTORE_ATTEMPTS`` times first). A copy that cannot be read, a torn event line,
    a log gap or a blob the record points at in vain is reported too, and the rebuild
    goes on with the rest. ``on_progress`` is told how many copies were just read.
    ``copy``: ``mirror`` is not this service's own tree, whose mirror then takes it all.
    """
    report = RebuildReport()
    batch: list[MirroredEvaluation] = []

    async def flush() -> None:
        if batch:
            await _restore_batch(batch, scope, report, copy)
            if on_progress is not None:
                on_progress(len(batch))
            batch.clear()

    async for found in mirror.evaluations():
        if isinstance(found, Unreadable):
            report.unreadable.append(found)
            if on_progress is not None:
                on_progress(1)
            continue
        if batch and batch[0].tenant != found.tenant:  # a batch is one tenant's
            await flush()
        batch.append(found)
        if len(batch) >= batch_size:
            await flush()
    await flush()
    return report


async def _restore_batch(
    batch: list[MirroredEvaluation], scope: RestoreScope, report: RebuildReport, copy: bool
) -> None:
    try:
        async with scope(batch[0].tenant) as (use_case, payloads):
            restored = await use_case.restore_all(batch, copy=copy)
            missing = [await payloads.missing_blobs(found.record) for found in batch]
    except (ApplicationError, DomainError):
        for found in batch:
            await _restore_one(found, scope, report, copy)
        return
    for found, done, keys in zip(batch, restored, missing, strict=True):
        _count(found, done, keys, report)


async def _restore_one(
    found: MirroredEvaluation, scope: RestoreScope, report: RebuildReport, copy: bool
) -> None:
    for attempt in range(1, RESTORE_ATTEMPTS + 1):
        try:
            async with scope(found.tenant) as (use_case, payloads):
                done = await use_case.restore(found, copy=copy)
                keys = await payloads.missing_blobs(found.record)
        except WriteConflictError as error:
            if attempt < RESTORE_ATTEMPTS:
                continue
            _refused(found, error, report)
        except (ApplicationError, DomainError) as error:
            _refused(found, error, report)
        else:
            _count(found, done, keys, report)
        return


def _refused(found: MirroredEvaluation, error: Exception, report: RebuildReport) -> None:
    path = evaluation_prefix(found.tenant, found.record.id).rstrip("/")
    report.unreadable.append(Unreadable(path=path, reason=str(error)))


def _count(
    found: MirroredEvaluation, restored: bool, missing: list[str], report: RebuildReport
) -> None:
    if not restored:
        report.skipped += 1
        return
    report.restored += 1
    report.events += len(found.events)
    report.log_bytes += len(found.log.encode())
    report.problems.extend(found.problems)
    path = evaluation_prefix(found.tenant, found.record.id).rstrip("/")
    report.problems.extend(f"{path}: blob {key} is missing" for key in missing)


@dataclass(frozen=True, slots=True)
class CopyToMirror:
    """Write one evaluation's copy again from the database (soft-deleted ones too, so a
    delete whose copy was lost is not undone by a rebuild): record, events, whole log.

    For a tree that fell behind (a crash between a commit and its copy, a copy that
    failed): the record replaces an older copy, events already there are read once,
    and the log is written whole from byte 0, filling any gap.
    """

    repository: EvaluationRepository
    events: EventLog
    logs: LogStore
    mirror: RecordMirror
    tenant: TenantId

    async def execute(self, evaluation_id: EvaluationId) -> bool:
        """Whether it was copied (``False``: no such record here)."""
        evaluation = await self.repository.get_any(evaluation_id)
        if evaluation is None:
            return False
        await self.mirror.record(self.tenant, evaluation)
        for event in await self.events.list(evaluation_id):
            await self.mirror.event(self.tenant, event)
        log = await self.logs.read(evaluation_id)
        if log.content:
            await self.mirror.log(
                self.tenant,
                LogChunk(
                    evaluation_id=evaluation_id,
                    offset=0,
                    content=log.content,
                    created_at=evaluation.updated_at,
                ),
            )
        return True
