"""Writes as data: what a request asked for, in a form the failover journal keeps.

An intent is replayed through the same use case that would have served the
request, with the clock pinned to the request's instant, so a write applied late
stores what it would have stored on time.
"""

from datetime import datetime

import msgspec

from application.use_cases.celery_update import CeleryUpdate
from application.use_cases.create_evaluation import NewEvaluation
from application.use_cases.events import NewEvent
from application.use_cases.update_evaluation import EvaluationChanges
from domain.payload import PayloadKind, StoredPayload


class CreateIntent(msgspec.Struct, frozen=True, tag="create"):
    new: NewEvaluation
    # ``new.id`` was generated for the caller: a collision may pick another one.
    generated_id: bool = False


class UpdateIntent(msgspec.Struct, frozen=True, tag="update"):
    changes: EvaluationChanges


class DeleteIntent(msgspec.Struct, frozen=True, tag="delete"):
    pass


class CeleryIntent(msgspec.Struct, frozen=True, tag="celery_update"):
    update: CeleryUpdate


class AppendLogIntent(msgspec.Struct, frozen=True, tag="append_log"):
    content: str
    # When the writer produced the content; ``None``: the request's instant.
    last_update: datetime | None = None


class RecordEventIntent(msgspec.Struct, frozen=True, tag="record_event"):
    # ``event.event_id`` is always set: a replay (or a redelivery) is stored once.
    event: NewEvent


class AttachPayloadIntent(msgspec.Struct, frozen=True, tag="attach_payload"):
    """An uploaded output or error: the blob is already stored, the record must point at it."""

    kind: PayloadKind
    payload: StoredPayload


Intent = (
    CreateIntent
    | UpdateIntent
    | DeleteIntent
    | CeleryIntent
    | AppendLogIntent
    | RecordEventIntent
    | AttachPayloadIntent
)


class JournalEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One acknowledged write that the primary does not hold yet.

    ``at`` is the instant the request pinned (the record's timestamps and the audit
    entry carry it); ``uncertain`` says the primary failed while the write may have
    been committing, so a replay first looks for the write's audit entry.
    """

    id: str
    evaluation_id: str
    at: datetime
    intent: Intent
    actor: str
    request_id: str | None = None
    uncertain: bool = False
    # Monotonic per process, nanoseconds since the epoch: the replay order.
    sequence: int = 0


ENTRY_ENCODER = msgspec.json.Encoder()
ENTRY_DECODER = msgspec.json.Decoder(JournalEntry)
