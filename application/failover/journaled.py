"""A write the primary cannot take now: checked against the record's journaled state,
made durable, then answered as the primary would have answered it."""

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import anyio

from application.errors import EvaluationNotFoundError, WriteAcceptedError
from application.failover.views import JournalViews
from application.intents import (
    AppendLogIntent,
    CreateIntent,
    JournalEntry,
    WriteIntent,
    as_intent,
    journal_tenant,
)
from application.ports.journal import Journal
from application.ports.scratch_store import ScratchStore
from domain.audit import AuditContext
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId, qualified_id

R = TypeVar("R")


class RecordLocks:
    """One lock per record, by its qualified id (a tenant's id is not another's record),
    held while a journaled write of it is computed and stored."""

    def __init__(self) -> None:
        self._locks: dict[str, anyio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, anyio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:  # the last user forgets it: no growth per record
                del self._users[key], self._locks[key]


@dataclass(frozen=True, slots=True)
class JournaledWrites:
    journal: Journal
    views: JournalViews
    locks: RecordLocks
    context: AuditContext
    tenant: TenantId

    async def write(
        self, intent: WriteIntent[R], evaluation_id: EvaluationId, at: datetime, *, uncertain: bool
    ) -> R:
        """Journal ``intent`` as of ``at`` and answer it as the primary would have.

        ``uncertain``: the primary failed while the write may have been committing. One
        journaled write per record at a time in this process: two computed from the same
        state would both be answered (two log appends at one offset).
        """
        entry = JournalEntry(
            id=uuid.uuid4().hex,
            evaluation_id=evaluation_id,
            at=at,
            intent=as_intent(intent),
            actor=self.context.actor,
            request_id=self.context.request_id,
            uncertain=uncertain,
            named_tenant=journal_tenant(self.tenant),
        )
        async with self.locks.hold(qualified_id(self.tenant, evaluation_id)):
            creating = isinstance(intent, CreateIntent)
            view = await self.views.open(evaluation_id)
            if view.missing and not creating:
                raise EvaluationNotFoundError(evaluation_id)
            # An append's offset needs the whole log; other answers need a base record.
            answerable = view.complete if isinstance(intent, AppendLogIntent) else view.known
            if not (creating or answerable):
                await _check_input(view.store, intent, evaluation_id, at)
                stored = await self.journal.append(entry)
                raise WriteAcceptedError(evaluation_id, stored.id)
            result = await view.store.apply(intent, evaluation_id, at)
            await self.journal.append(entry)
            return result


async def _check_input(
    store: ScratchStore, intent: WriteIntent[R], evaluation_id: EvaluationId, at: datetime
) -> None:
    """Refuse bad input now, though the record itself is unknown until the replay.

    The write runs on a stand-in record; only the record's own state (its status,
    its existence) can refuse it, and those are judged at replay.
    """
    stand_in = Evaluation(id=evaluation_id, code="", created_at=at, updated_at=at)
    await store.seed(stand_in)
    with contextlib.suppress(EvaluationNotFoundError):
        await store.apply(intent, evaluation_id, at)
