"""Writes as data: what a request asked for, in a form the failover journal keeps.

An intent is replayed through the same use case that would have served the
request, with the clock pinned to the request's instant, so a write applied late
stores what it would have stored on time.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import msgspec

from application.commands import (
    CeleryOutcome,
    CeleryUpdate,
    EvaluationChanges,
    NewEvaluation,
    NewEvent,
)
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.payload import PayloadKind, StoredPayload
from domain.tenancy import DEFAULT_TENANT, TenantId, parse_tenant
from domain.timeline import EvaluationEvent, LogChunk

R_co = TypeVar("R_co", covariant=True)


class WriteIntent(msgspec.Struct, Generic[R_co], frozen=True):
    """A write that names what it answers (``R_co``): the handler registry is typed by it."""


class CreateIntent(WriteIntent[Evaluation], frozen=True, tag="create"):
    new: NewEvaluation
    # ``new.id`` was generated for the caller: a collision may pick another one.
    generated_id: bool = False


class UpdateIntent(WriteIntent[Evaluation], frozen=True, tag="update"):
    changes: EvaluationChanges


class DeleteIntent(WriteIntent[None], frozen=True, tag="delete"):
    pass


class CeleryIntent(WriteIntent[CeleryOutcome], frozen=True, tag="celery_update"):
    update: CeleryUpdate


class AppendLogIntent(WriteIntent[LogChunk], frozen=True, tag="append_log"):
    content: str
    # When the writer produced the content; ``None``: the request's instant.
    last_update: datetime | None = None


class RecordEventIntent(WriteIntent[EvaluationEvent], frozen=True, tag="record_event"):
    # ``event.event_id`` is always set: a replay (or a redelivery) is stored once.
    event: NewEvent


class AttachPayloadIntent(WriteIntent[Evaluation], frozen=True, tag="attach_payload"):
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


@dataclass(frozen=True)
class Target:
    """The record a write is for, and how it is held to it.

    ``acknowledged``: the write was answered already (a replay), so a generated id that
    is taken meanwhile is a conflict, not a reason to pick another id.
    """

    evaluation_id: EvaluationId
    expected_version: int | None = None
    acknowledged: bool = False


def as_intent(intent: WriteIntent[Any]) -> Intent:
    """``intent`` as a member of the journal's union: every ``WriteIntent`` is one (the
    handler table's test holds the two sets equal)."""
    return cast("Intent", intent)


class JournalEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One acknowledged write that the primary does not hold yet.

    ``at`` is the instant the request pinned (the record's timestamps and the audit
    entry carry it); ``uncertain`` says the primary failed while the write may have
    been committing, so a replay first looks for the write's audit entry. ``tenant``:
    whose write it is (``journal_tenant``).
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
    # Absent for the default tenant: its entries, and those written before tenants, are
    # the same bytes (ADR 0032).
    named_tenant: TenantId | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="tenant")

    def __post_init__(self) -> None:
        if not isinstance(self.named_tenant, msgspec.UnsetType):
            parse_tenant(self.named_tenant)  # a line's tenant becomes part of names

    @property
    def tenant(self) -> TenantId:
        if isinstance(self.named_tenant, msgspec.UnsetType):
            return DEFAULT_TENANT
        return self.named_tenant


def entry_of(entry: JournalEntry, tenant: TenantId, evaluation_id: str) -> bool:
    """Whether ``entry`` is a write of ``tenant``'s ``evaluation_id``."""
    return entry.evaluation_id == evaluation_id and entry.tenant == tenant


def journal_tenant(tenant: TenantId) -> TenantId | msgspec.UnsetType:
    """How a journal entry names ``tenant``: not at all when it is the default tenant."""
    return msgspec.UNSET if tenant == DEFAULT_TENANT else tenant


ENTRY_ENCODER = msgspec.json.Encoder()
ENTRY_DECODER = msgspec.json.Decoder(JournalEntry)
