"""``rebuild-database``: a lost database restored from the record mirror's file tree."""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import msgspec

from application.errors import ApplicationError
from application.ports.record_mirror import MirroredEvaluation, MirrorReader, Unreadable
from application.services.payloads import PayloadStore
from application.use_cases.import_evaluations import ImportEvaluation
from domain.errors import DomainError


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


# One restore per evaluation, each in a scope (and transaction) of its own.
RestoreScope = Callable[[], AbstractAsyncContextManager[tuple[ImportEvaluation, PayloadStore]]]


async def rebuild_database(
    mirror: MirrorReader,
    scope: RestoreScope,
    on_progress: Callable[[RebuildReport], None] | None = None,
) -> RebuildReport:
    """Restore every evaluation of ``mirror`` that the database does not hold.

    Idempotent: an evaluation already present (even soft-deleted) is skipped, so an
    interrupted rebuild is simply run again. A copy that cannot be read, a record the
    database refuses, a torn event line, a log gap or a blob the record points at in
    vain is reported, and the rebuild goes on with the rest.
    """
    report = RebuildReport()
    async for found in mirror.evaluations():
        if isinstance(found, Unreadable):
            report.unreadable.append(found)
        else:
            await _restore(found, scope, report)
        if on_progress is not None:
            on_progress(report)
    return report


async def _restore(found: MirroredEvaluation, scope: RestoreScope, report: RebuildReport) -> None:
    evaluation_id = found.record.id
    async with scope() as (use_case, payloads):
        try:
            restored = await use_case.restore(found)
        except (ApplicationError, DomainError) as error:
            report.unreadable.append(
                Unreadable(path=f"evaluations/{evaluation_id}", reason=str(error))
            )
            return
        missing = await payloads.missing_blobs(found.record)
    if not restored:
        report.skipped += 1
        return
    report.restored += 1
    report.events += len(found.events)
    report.log_bytes += len(found.log.encode())
    report.problems.extend(found.problems)
    report.problems.extend(f"evaluations/{evaluation_id}: blob {key} is missing" for key in missing)
