import builtins
from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import Protocol

import msgspec

from application.queries import RecordTally
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from domain.timeline import EvaluationEvent, LogChunk


class RecordMirror(Protocol):
    """A copy of every committed record, event and log piece, kept to rebuild a lost database.

    Written after the commit and before the answer, so an acknowledged write is
    mirrored. Writers of one record may finish out of order: ``record`` keeps the
    newest version it was given, events are kept once by ``event_id`` and log
    pieces at their byte offsets, so the order of the calls never matters.
    Implementations swallow their own failures, like a cache (the record is
    committed), and log and count them; the record's next write mirrors it whole.
    One mirror serves every tenant: each call names the record's (ADR 0032).
    """

    @abstractmethod
    async def record(self, tenant: TenantId, evaluation: Evaluation) -> None: ...

    @abstractmethod
    async def event(self, tenant: TenantId, event: EvaluationEvent) -> None: ...

    @abstractmethod
    async def log(self, tenant: TenantId, chunk: LogChunk) -> None: ...

    @abstractmethod
    async def forget(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        """The record was purged: its copy goes too."""


class MirroredEvaluation(msgspec.Struct, kw_only=True):
    """One evaluation of ``tenant`` as a mirror holds it, and what in its copy could not
    be read."""

    tenant: TenantId
    record: Evaluation
    events: builtins.list[EvaluationEvent]
    log: str
    problems: builtins.list[str] = msgspec.field(default_factory=list)


class Unreadable(msgspec.Struct, frozen=True, kw_only=True):
    """A copy that yields no record (``path`` and why)."""

    path: str
    reason: str


class MirrorReader(Protocol):
    """Reads a mirror back, one evaluation at a time (a tree may hold millions)."""

    @abstractmethod
    def evaluations(self) -> AsyncIterator[MirroredEvaluation | Unreadable]:
        """Every tenant's copies, each naming its tenant."""

    @abstractmethod
    async def tallies(self, tenant: TenantId) -> dict[str, RecordTally]:
        """Each readable copy of ``tenant``: its version, distinct events and log bytes,
        by id."""

    @abstractmethod
    async def count(self) -> int:
        """How many evaluations the mirror holds, of every tenant (for a progress bar; a
        directory count)."""
