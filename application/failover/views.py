"""A record as the service answers it while writes of it wait in the failover journal."""

import contextlib
from dataclasses import dataclass

from application.errors import ApplicationError, BackendUnavailableError
from application.failover.primary import PrimaryState
from application.intents import CreateIntent, JournalEntry
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.journal import Journal
from application.ports.replay_marks import ReplayMarks
from application.ports.scratch_store import ScratchStore, ScratchStores
from application.ports.unit_of_work import UnitOfWork
from application.services.record_cache import RecordCache
from domain.errors import DomainError
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId


@dataclass(frozen=True)
class JournalView:
    """A record as the primary (or cache) knew it, with its pending writes applied.

    ``known``: a base state exists (a seed or a journaled create), so answers can be
    computed. ``complete``: the journal holds the record's create, so its log and
    events are all here too.
    """

    store: ScratchStore
    known: bool
    complete: bool
    # The primary answered that it holds no such record (and the journal has no create).
    missing: bool = False


@dataclass(frozen=True, slots=True)
class JournalViews:
    journal: Journal
    scratch: ScratchStores
    repository: EvaluationRepository
    marks: ReplayMarks
    record_cache: RecordCache
    uow: UnitOfWork
    primary: PrimaryState
    tenant: TenantId

    async def open(
        self, evaluation_id: EvaluationId, pending: list[JournalEntry] | None = None
    ) -> JournalView:
        """``pending``: the record's journal entries when the caller has read them."""
        if pending is None:
            pending = await self.journal.pending_for(self.tenant, evaluation_id)
        seed, applied, asked = await self._seed(evaluation_id, pending)
        waiting = [entry for entry in pending if entry.id not in applied]
        store = self.scratch.open()
        if seed is not None:
            await store.seed(seed)
        complete = seed is None and any(isinstance(e.intent, CreateIntent) for e in waiting)
        for entry in waiting:
            # Refused entries are refused again at replay (and logged there).
            with contextlib.suppress(ApplicationError, DomainError):
                await store.apply(entry.intent, evaluation_id, entry.at)
        known = seed is not None or complete
        return JournalView(store=store, known=known, complete=complete, missing=asked and not known)

    async def _seed(
        self, evaluation_id: EvaluationId, pending: list[JournalEntry]
    ) -> tuple[Evaluation | None, set[str], bool]:
        """The primary's record and the entries it already holds; else the cached record.

        The last item says whether the primary answered (its ``None`` means "no such
        record", the cache's only "not cached").
        """
        if self.primary.is_down:
            return await self.record_cache.get(self.tenant, evaluation_id), set(), False
        try:
            evaluation = await self.repository.get(evaluation_id)
            applied = {entry.id for entry in pending if await self.marks.is_applied(entry.id)}
        except BackendUnavailableError:
            self.primary.mark_down()
            with contextlib.suppress(Exception):
                await self.uow.rollback()
            return await self.record_cache.get(self.tenant, evaluation_id), set(), False
        return evaluation, applied, True
