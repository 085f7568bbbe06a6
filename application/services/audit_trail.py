"""Turns "this use case changed that" into an audit entry for the request's caller."""

import msgspec

from application.ports.audit_log import AuditLog
from application.ports.clock import Clock
from domain.audit import AuditAction, AuditEntry


class AuditContext(msgspec.Struct, frozen=True):
    """Who the current request or command acts as, and its request id."""

    actor: str
    request_id: str | None = None


class AuditTrail:
    def __init__(self, log: AuditLog, clock: Clock, context: AuditContext) -> None:
        self._log = log
        self._clock = clock
        self._context = context

    async def record(
        self,
        action: AuditAction,
        evaluation_id: str | None,
        *,
        fields: tuple[str, ...] = (),
        sizes: dict[str, int] | None = None,
    ) -> None:
        """Append an entry to the current transaction (call before ``commit``)."""
        await self._log.append(
            AuditEntry(
                at=self._clock.now(),
                actor=self._context.actor,
                action=action,
                evaluation_id=evaluation_id,
                fields=tuple(sorted(fields)),
                sizes=sizes or {},
                request_id=self._context.request_id,
            )
        )
