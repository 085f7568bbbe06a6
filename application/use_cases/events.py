import uuid
from dataclasses import dataclass

from application.commands import NewEvent
from application.errors import EvaluationNotFoundError
from application.ports.clock import Clock
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.event_log import EventLog
from application.ports.record_mirror import RecordMirror
from application.ports.unit_of_work import UnitOfWork
from application.services.audit_trail import AuditTrail
from domain.audit import AuditAction
from domain.evaluation import ensure_storable_json, ensure_storable_text
from domain.identifiers import EvaluationId
from domain.limits import InputLimits
from domain.tenancy import TenantId
from domain.timeline import EvaluationEvent
from domain.timestamps import as_utc

_EVENT_FIELDS = ("event_type", "message", "metadata", "timestamp", "event_id")


@dataclass(frozen=True, slots=True)
class RecordEvent:
    """Append to the timeline; a redelivered ``event_id`` is stored once."""

    repository: EvaluationRepository
    events: EventLog
    uow: UnitOfWork
    clock: Clock
    audit: AuditTrail
    limits: InputLimits
    mirror: RecordMirror
    tenant: TenantId

    async def execute(self, evaluation_id: EvaluationId, new: NewEvent) -> EvaluationEvent:
        ensure_storable_text("event_type", new.event_type)
        if new.message is not None:
            ensure_storable_text("message", new.message)
        ensure_storable_json("metadata", new.metadata)
        self.limits.check_json("metadata", new.metadata)
        if new.message is not None:
            self.limits.check_text("message", new.message, self.limits.event_message_bytes)
        ensure_storable_json("event_id", new.event_id)
        if await self.repository.get(evaluation_id) is None:
            raise EvaluationNotFoundError(evaluation_id)
        event = EvaluationEvent(
            evaluation_id=evaluation_id,
            event_id=new.event_id or uuid.uuid4().hex,
            event_type=new.event_type,
            timestamp=self.clock.now() if new.timestamp is None else as_utc(new.timestamp),
            message=new.message,
            metadata=new.metadata,
        )
        if await self.events.append(event):
            await self.audit.record(
                AuditAction.RECORD_EVENT,
                evaluation_id,
                fields=tuple(name for name in _EVENT_FIELDS if getattr(new, name)),
                sizes={"message": len((event.message or "").encode())},
            )
            await self.uow.commit()
            await self.mirror.event(self.tenant, event)
            return event
        # A redelivery: answer with the event as first stored, not the new copy. It is
        # copied again: the first delivery's copy may be what a crash took (read once).
        stored = await self.events.list(evaluation_id)
        first = next((found for found in stored if found.event_id == event.event_id), event)
        await self.mirror.event(self.tenant, first)
        return first


@dataclass(frozen=True, slots=True)
class ListEvents:
    repository: EvaluationRepository
    events: EventLog

    async def execute(self, evaluation_id: EvaluationId) -> list[EvaluationEvent]:
        if await self.repository.get(evaluation_id) is None:
            raise EvaluationNotFoundError(evaluation_id)
        return await self.events.list(evaluation_id)
