"""Turns "this use case changed that" into an audit entry for the request's caller."""

from application.ports.audit_log import AuditLog
from application.ports.clock import Clock
from application.ports.replay_marks import ReplayMarks
from domain.audit import AuditAction, AuditContext, AuditEntry
from domain.status import EvaluationStatus


class AuditTrail:
    """Every write calls ``record`` once, inside its transaction, before ``commit``.

    That makes it the place where a replayed journal entry is marked as applied:
    the mark commits with the change or not at all.
    """

    def __init__(
        self, log: AuditLog, clock: Clock, context: AuditContext, marks: ReplayMarks
    ) -> None:
        self._log = log
        self._clock = clock
        self._context = context
        self._marks = marks

    async def record(
        self,
        action: AuditAction,
        evaluation_id: str | None,
        *,
        fields: tuple[str, ...] = (),
        sizes: dict[str, int] | None = None,
        status: EvaluationStatus | None = None,
        version: int | None = None,
    ) -> None:
        """Append an entry to the current transaction (call before ``commit``).

        ``status`` and ``version`` are the record's after the change, where the write
        knows them: the change feed reads them from the entry.
        """
        await self._log.append(
            AuditEntry(
                at=self._clock.now(),
                actor=self._context.actor,
                action=action,
                evaluation_id=evaluation_id,
                fields=tuple(sorted(fields)),
                sizes=sizes or {},
                request_id=self._context.request_id,
                status=status,
                version=version,
            )
        )
        if self._context.journal_entry is not None:
            await self._marks.mark(self._context.journal_entry)
