"""Automatic failover: every write reaches the primary, now or after a replay.

A write goes to the primary unless the failover journal holds entries (they must
be applied first, in order). When the primary is unavailable (the adapter raised
``BackendUnavailableError`` for the database: refused, reset, timed out, shutting
down; never a constraint or bad input), the write becomes a journal entry, durable
before it is acknowledged, and a background replay applies it once the primary
answers. The answer is computed by running the journaled writes of that record on
a scratch store, so the client reads its own writes while the journal is pending.
"""

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import anyio
import msgspec
import structlog

from application.errors import (
    ApplicationError,
    BackendUnavailableError,
    EvaluationNotFoundError,
    InvalidRequestError,
    WriteAcceptedError,
)
from application.intents import (
    AppendLogIntent,
    AttachPayloadIntent,
    CeleryIntent,
    CreateIntent,
    DeleteIntent,
    Intent,
    JournalEntry,
    RecordEventIntent,
    UpdateIntent,
)
from application.ports.clock import Clock
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.journal import Journal
from application.ports.replay_marks import ReplayMarks
from application.ports.scratch_store import ScratchStore, ScratchStores
from application.ports.unit_of_work import UnitOfWork
from application.ports.use_case_locator import UseCaseLocator
from application.queries import Projection, check_projection, project
from application.services.audit_trail import AuditContext
from application.services.intent_runner import IntentRunner, WriteResult
from application.services.pinned_clock import pinned
from application.services.primary_state import PrimaryState
from application.services.record_cache import RecordCache
from application.use_cases.celery_update import CeleryOutcome, CeleryUpdate
from application.use_cases.create_evaluation import NewEvaluation
from application.use_cases.evaluation_content import UploadPayload
from application.use_cases.events import NewEvent
from application.use_cases.get_evaluation import GetEvaluation, GetEvaluationFields
from application.use_cases.update_evaluation import EvaluationChanges
from domain.errors import DomainError
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId, generate_evaluation_id
from domain.payload import PayloadKind
from domain.timeline import EvaluationEvent, LogChunk, LogSlice

PRIMARY = "database"

log = structlog.get_logger(__name__)

T = TypeVar("T")


class RecordLocks:
    """One lock per record id, held while a journaled write of it is computed and stored."""

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


class JournalViews:
    def __init__(
        self,
        journal: Journal,
        scratch: ScratchStores,
        repository: EvaluationRepository,
        marks: ReplayMarks,
        record_cache: RecordCache,
        uow: UnitOfWork,
        primary: PrimaryState,
    ) -> None:
        self._journal = journal
        self._scratch = scratch
        self._repository = repository
        self._marks = marks
        self._record_cache = record_cache
        self._uow = uow
        self._primary = primary

    async def open(
        self, evaluation_id: EvaluationId, pending: list[JournalEntry] | None = None
    ) -> JournalView:
        """``pending``: the record's journal entries when the caller has read them."""
        if pending is None:
            pending = await self._journal.pending_for(evaluation_id)
        seed, applied, asked = await self._seed(evaluation_id, pending)
        waiting = [entry for entry in pending if entry.id not in applied]
        store = self._scratch.open()
        if seed is not None:
            await store.seed(seed)
        complete = seed is None and any(isinstance(e.intent, CreateIntent) for e in waiting)
        for entry in waiting:
            # Refused entries are refused again at replay (and logged there).
            with contextlib.suppress(ApplicationError, DomainError):
                await store.apply(entry)
        known = seed is not None or complete
        return JournalView(store=store, known=known, complete=complete, missing=asked and not known)

    async def _seed(
        self, evaluation_id: EvaluationId, pending: list[JournalEntry]
    ) -> tuple[Evaluation | None, set[str], bool]:
        """The primary's record and the entries it already holds; else the cached record.

        The last item says whether the primary answered (its ``None`` means "no such
        record", the cache's only "not cached").
        """
        if self._primary.is_down:
            return await self._record_cache.get(evaluation_id), set(), False
        try:
            evaluation = await self._repository.get(evaluation_id)
            applied = {entry.id for entry in pending if await self._marks.is_applied(entry.id)}
        except BackendUnavailableError:
            self._primary.mark_down()
            with contextlib.suppress(Exception):
                await self._uow.rollback()
            return await self._record_cache.get(evaluation_id), set(), False
        return evaluation, applied, True


class FailoverWrites:
    """The seven writes, each routed to the primary or the journal."""

    def __init__(
        self,
        runner: IntentRunner,
        journal: Journal,
        clock: Clock,
        context: AuditContext,
        uow: UnitOfWork,
        locate: UseCaseLocator,
        primary: PrimaryState,
        locks: RecordLocks,
    ) -> None:
        self._runner = runner
        self._journal = journal
        self._clock = clock
        self._context = context
        self._uow = uow
        self._locate = locate
        self._primary = primary
        self._locks = locks

    async def create(self, new: NewEvaluation) -> Evaluation:
        generated = new.id is None
        if new.id is None:
            # Known before the first attempt, so a journaled create keeps the same id.
            new = msgspec.structs.replace(
                new, id=generate_evaluation_id(self._clock.now(), secrets.token_hex(3))
            )
        assert new.id is not None
        result = await self._write(new.id, CreateIntent(new, generated_id=generated))
        return _expect(Evaluation, result)

    async def update(
        self,
        evaluation_id: EvaluationId,
        changes: EvaluationChanges,
        *,
        expected_version: int | None = None,
    ) -> Evaluation:
        result = await self._write(
            evaluation_id, UpdateIntent(changes), expected_version=expected_version
        )
        return _expect(Evaluation, result)

    async def delete(
        self, evaluation_id: EvaluationId, *, expected_version: int | None = None
    ) -> None:
        await self._write(evaluation_id, DeleteIntent(), expected_version=expected_version)

    async def celery_update(
        self, evaluation_id: EvaluationId, update: CeleryUpdate
    ) -> CeleryOutcome:
        return _expect(CeleryOutcome, await self._write(evaluation_id, CeleryIntent(update)))

    async def append_log(
        self, evaluation_id: EvaluationId, content: str, last_update: datetime | None = None
    ) -> LogChunk:
        intent = AppendLogIntent(content, last_update)
        return _expect(LogChunk, await self._write(evaluation_id, intent))

    async def record_event(self, evaluation_id: EvaluationId, new: NewEvent) -> EvaluationEvent:
        if new.event_id is None:  # an id makes the replay (and a redelivery) idempotent
            new = msgspec.structs.replace(new, event_id=uuid.uuid4().hex)
        result = await self._write(evaluation_id, RecordEventIntent(new))
        return _expect(EvaluationEvent, result)

    async def upload(
        self, evaluation_id: EvaluationId, kind: PayloadKind, chunks: AsyncIterator[bytes]
    ) -> Evaluation:
        uploads = await self._locate.get(UploadPayload)
        journaled = await self._journal.has_pending()
        stored = await uploads.receive(evaluation_id, kind, chunks, check_exists=not journaled)
        try:
            result = await self._write(evaluation_id, AttachPayloadIntent(kind, stored))
        except WriteAcceptedError:
            raise
        except BaseException:
            await uploads.discard(stored)  # no record will point at it
            raise
        return _expect(Evaluation, result)

    async def _write(
        self, evaluation_id: EvaluationId, intent: Intent, *, expected_version: int | None = None
    ) -> WriteResult:
        at = self._clock.now()
        with pinned(at):
            attempted = False
            if not await self._journal.has_pending():
                try:
                    result = await self._runner.run(
                        evaluation_id, intent, expected_version=expected_version
                    )
                except BackendUnavailableError as error:
                    if error.backend != PRIMARY:
                        raise
                    self._primary.mark_down()
                    attempted = True
                    log.warning(
                        "write_to_journal", evaluation_id=evaluation_id, reason=error.detail
                    )
                    # The request's transaction is broken; the view below reads afresh.
                    with contextlib.suppress(Exception):
                        await self._uow.rollback()
                else:
                    self._primary.mark_up()
                    return result
            if expected_version is not None:
                raise BackendUnavailableError(
                    PRIMARY,
                    "If-Match cannot be checked while writes wait in the failover journal",
                )
            return await self._journaled(
                JournalEntry(
                    id=uuid.uuid4().hex,
                    evaluation_id=evaluation_id,
                    at=at,
                    intent=intent,
                    actor=self._context.actor,
                    request_id=self._context.request_id,
                    uncertain=attempted,
                )
            )

    async def _journaled(self, entry: JournalEntry) -> WriteResult:
        """Check the write against the record's journaled state, then make it durable.

        One journaled write per record at a time in this process: two computed from the
        same state would both be answered (two log appends at one offset).
        """
        async with self._locks.hold(entry.evaluation_id):
            return await self._journal_one(entry)

    async def _journal_one(self, entry: JournalEntry) -> WriteResult:
        creating = isinstance(entry.intent, CreateIntent)
        views = await self._locate.get(JournalViews)
        view = await views.open(EvaluationId(entry.evaluation_id))
        if view.missing and not creating:
            raise EvaluationNotFoundError(entry.evaluation_id)
        # An append's offset needs the whole log; other answers need a base record.
        answerable = view.complete if isinstance(entry.intent, AppendLogIntent) else view.known
        if creating or answerable:
            result = await view.store.apply(entry)
        else:
            await _check_input(view.store, entry)
        stored = await self._journal.append(entry)
        if not (creating or answerable):
            raise WriteAcceptedError(entry.evaluation_id, stored.id)
        return result


async def _check_input(store: ScratchStore, entry: JournalEntry) -> None:
    """Refuse bad input now, though the record itself is unknown until the replay.

    The write runs on a stand-in record; only the record's own state (its status,
    its existence) can refuse it, and those are judged at replay.
    """
    stand_in = Evaluation(
        id=EvaluationId(entry.evaluation_id), code="", created_at=entry.at, updated_at=entry.at
    )
    await store.seed(stand_in)
    with contextlib.suppress(EvaluationNotFoundError):
        await store.apply(entry)


def _expect(kind: type[T], result: WriteResult) -> T:
    assert isinstance(result, kind), f"expected {kind.__name__}, got {type(result).__name__}"
    return result


class FailoverReads:
    """Reads of one record that see its journaled writes while they wait for replay."""

    def __init__(self, journal: Journal, locate: UseCaseLocator) -> None:
        self._journal = journal
        self._locate = locate

    async def get(self, evaluation_id: EvaluationId) -> Evaluation:
        found = await self._journaled(evaluation_id)
        if found is None:
            return await (await self._locate.get(GetEvaluation)).execute(evaluation_id)
        return found

    async def get_fields(self, evaluation_id: EvaluationId, fields: frozenset[str]) -> Projection:
        found = await self._journaled(evaluation_id)
        if found is None:
            get_fields = await self._locate.get(GetEvaluationFields)
            return await get_fields.execute(evaluation_id, fields)
        try:
            wanted = check_projection(fields)
        except ValueError as exc:
            raise InvalidRequestError("fields", str(exc)) from None
        return project(found, wanted)

    async def _journaled(self, evaluation_id: EvaluationId) -> Evaluation | None:
        """The record with its journaled writes, or None when the journal does not know it
        (then the usual read answers); 404 when a journaled delete removed it."""
        view = await self._view(evaluation_id)
        if view is None or not view.known:
            return None
        found = await view.store.get(evaluation_id)
        if found is None:
            raise EvaluationNotFoundError(evaluation_id)
        return found

    async def complete_view(self, evaluation_id: EvaluationId) -> ScratchStore | None:
        """The scratch store of a record created while the journal was pending, else None."""
        view = await self._view(evaluation_id)
        return view.store if view is not None and view.complete else None

    async def events(self, evaluation_id: EvaluationId) -> list[EvaluationEvent] | None:
        store = await self.complete_view(evaluation_id)
        return None if store is None else await store.events(evaluation_id)

    async def log(self, evaluation_id: EvaluationId, offset: int) -> LogSlice | None:
        store = await self.complete_view(evaluation_id)
        return None if store is None else await store.log(evaluation_id, offset)

    async def _view(self, evaluation_id: EvaluationId) -> JournalView | None:
        pending = await self._journal.pending_for(evaluation_id)
        if not pending:
            return None
        return await (await self._locate.get(JournalViews)).open(evaluation_id, pending)
