"""Every write of a record, routed to the primary or to the failover journal.

A write goes to the primary unless the failover journal holds entries (they must
be applied first, in order). When the primary is unavailable (the adapter raised
``BackendUnavailableError`` for the database: refused, reset, timed out, shutting
down; never a constraint or bad input), the write becomes a journal entry, durable
before it is acknowledged, and a background replay applies it once the primary
answers. The answer is computed by running the journaled writes of that record on
a scratch store, so the client reads its own writes while the journal is pending.

The HTTP edge, the failover replay and the journal's read model all run a write
through the one handler table below, so a write replayed late is the same code as a
write served on time. Each intent names its result type, so ``run`` is typed by it.
"""

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

import msgspec
import structlog

from application.backends import Backend
from application.commands import (
    CeleryOutcome,
    CeleryUpdate,
    EvaluationChanges,
    NewEvaluation,
    NewEvent,
)
from application.errors import BackendUnavailableError, WriteAcceptedError
from application.failover.journaled import JournaledWrites
from application.failover.pinned_clock import pinned
from application.failover.primary import PrimaryState
from application.intents import (
    AppendLogIntent,
    AttachPayloadIntent,
    CeleryIntent,
    CreateIntent,
    DeleteIntent,
    RecordEventIntent,
    Target,
    UpdateIntent,
    WriteIntent,
)
from application.ports.clock import Clock
from application.ports.journal import Journal
from application.ports.unit_of_work import UnitOfWork
from application.ports.use_case_locator import UseCaseLocator
from application.use_cases.celery_update import ApplyCeleryUpdate
from application.use_cases.create_evaluation import CreateEvaluation
from application.use_cases.delete_evaluation import DeleteEvaluation
from application.use_cases.evaluation_content import AttachPayload, UploadPayload
from application.use_cases.events import RecordEvent
from application.use_cases.logs import AppendLog
from application.use_cases.update_evaluation import UpdateEvaluation
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId, generate_evaluation_id
from domain.payload import PayloadKind
from domain.timeline import EvaluationEvent, LogChunk

IntentT = TypeVar("IntentT", bound=WriteIntent[Any])
R = TypeVar("R")


Handler = Callable[[UseCaseLocator, Target, IntentT], Awaitable[Any]]
_HANDLERS: dict[type[WriteIntent[Any]], Handler[Any]] = {}


def _handles(kind: type[IntentT]) -> Callable[[Handler[IntentT]], Handler[IntentT]]:
    def register(handler: Handler[IntentT]) -> Handler[IntentT]:
        _HANDLERS[kind] = handler
        return handler

    return register


@_handles(CreateIntent)
async def _create(locate: UseCaseLocator, target: Target, intent: CreateIntent) -> Evaluation:
    create = await locate.get(CreateEvaluation)
    retry_id = intent.generated_id and not target.acknowledged
    return await create.execute(intent.new, generated_id=retry_id)


@_handles(UpdateIntent)
async def _update(locate: UseCaseLocator, target: Target, intent: UpdateIntent) -> Evaluation:
    update = await locate.get(UpdateEvaluation)
    return await update.execute(
        target.evaluation_id, intent.changes, expected_version=target.expected_version
    )


@_handles(DeleteIntent)
async def _delete(locate: UseCaseLocator, target: Target, _: DeleteIntent) -> None:
    delete = await locate.get(DeleteEvaluation)
    await delete.execute(target.evaluation_id, expected_version=target.expected_version)


@_handles(CeleryIntent)
async def _celery(locate: UseCaseLocator, target: Target, intent: CeleryIntent) -> CeleryOutcome:
    celery = await locate.get(ApplyCeleryUpdate)
    return await celery.execute(target.evaluation_id, intent.update)


@_handles(AppendLogIntent)
async def _append(locate: UseCaseLocator, target: Target, intent: AppendLogIntent) -> LogChunk:
    append = await locate.get(AppendLog)
    return await append.execute(target.evaluation_id, intent.content, intent.last_update)


@_handles(RecordEventIntent)
async def _event(
    locate: UseCaseLocator, target: Target, intent: RecordEventIntent
) -> EvaluationEvent:
    record = await locate.get(RecordEvent)
    return await record.execute(target.evaluation_id, intent.event)


@_handles(AttachPayloadIntent)
async def _attach(
    locate: UseCaseLocator, target: Target, intent: AttachPayloadIntent
) -> Evaluation:
    attach = await locate.get(AttachPayload)
    return await attach.execute(target.evaluation_id, intent.kind, intent.payload)


def handled() -> frozenset[type[WriteIntent[Any]]]:
    """The intents the table serves (a test holds it equal to the journal's ``Intent``)."""
    return frozenset(_HANDLERS)


@dataclass(frozen=True, slots=True)
class WriteHandlers:
    """Runs an intent through its handler, building only the use case it needs."""

    locate: UseCaseLocator

    async def run(self, intent: WriteIntent[R], target: Target) -> R:
        handler = _HANDLERS[type(intent)]
        # The table pairs each intent with the handler that answers its ``R``.
        return cast("R", await handler(self.locate, target, intent))


log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Writes:
    """The seven writes; each runs on the primary, or is journaled while it is away."""

    handlers: WriteHandlers
    journal: Journal
    clock: Clock
    uow: UnitOfWork
    locate: UseCaseLocator
    primary: PrimaryState

    async def create(self, new: NewEvaluation) -> Evaluation:
        generated = new.id is None
        if new.id is None:
            # Known before the first attempt, so a journaled create keeps the same id.
            new = msgspec.structs.replace(
                new, id=generate_evaluation_id(self.clock.now(), secrets.token_hex(3))
            )
        assert new.id is not None
        return await self.run(CreateIntent(new, generated_id=generated), Target(new.id))

    async def update(
        self,
        evaluation_id: EvaluationId,
        changes: EvaluationChanges,
        *,
        expected_version: int | None = None,
    ) -> Evaluation:
        return await self.run(UpdateIntent(changes), Target(evaluation_id, expected_version))

    async def delete(
        self, evaluation_id: EvaluationId, *, expected_version: int | None = None
    ) -> None:
        await self.run(DeleteIntent(), Target(evaluation_id, expected_version))

    async def celery_update(
        self, evaluation_id: EvaluationId, update: CeleryUpdate
    ) -> CeleryOutcome:
        return await self.run(CeleryIntent(update), Target(evaluation_id))

    async def append_log(
        self, evaluation_id: EvaluationId, content: str, last_update: datetime | None = None
    ) -> LogChunk:
        return await self.run(AppendLogIntent(content, last_update), Target(evaluation_id))

    async def record_event(self, evaluation_id: EvaluationId, new: NewEvent) -> EvaluationEvent:
        if new.event_id is None:  # an id makes the replay (and a redelivery) idempotent
            new = msgspec.structs.replace(new, event_id=uuid.uuid4().hex)
        return await self.run(RecordEventIntent(new), Target(evaluation_id))

    async def upload(
        self, evaluation_id: EvaluationId, kind: PayloadKind, chunks: AsyncIterator[bytes]
    ) -> Evaluation:
        uploads = await self.locate.get(UploadPayload)
        journaled = await self.journal.has_pending()
        stored = await uploads.receive(evaluation_id, kind, chunks, check_exists=not journaled)
        try:
            return await self.run(AttachPayloadIntent(kind, stored), Target(evaluation_id))
        except WriteAcceptedError:
            raise
        except BaseException:
            await uploads.discard(stored)  # no record will point at it
            raise

    async def run(self, intent: WriteIntent[R], target: Target) -> R:
        """Run ``intent`` on the primary; journal it when the primary is away or behind."""
        at = self.clock.now()
        with pinned(at):
            refused: BackendUnavailableError | None = None
            if not await self.journal.has_pending():
                try:
                    result = await self.handlers.run(intent, target)
                except BackendUnavailableError as error:
                    if error.backend != Backend.DATABASE:
                        raise
                    self.primary.mark_down()
                    refused = error
                    log.warning(
                        "write_to_journal", evaluation_id=target.evaluation_id, reason=error.detail
                    )
                    # The request's transaction is broken; the view below reads afresh.
                    with contextlib.suppress(Exception):
                        await self.uow.rollback()
                else:
                    self.primary.mark_up()
                    return result
            if target.expected_version is not None:
                raise BackendUnavailableError(
                    Backend.DATABASE,
                    "If-Match cannot be checked while writes wait in the failover journal",
                )
            journaled = await self.locate.get(JournaledWrites)
            try:
                return await journaled.write(
                    intent, target.evaluation_id, at, uncertain=refused is not None
                )
            except BackendUnavailableError as error:
                if refused is None or error.backend != Backend.FALLBACK:
                    raise
                # Refused by both: the answer names the primary's failure (its cause, its
                # retry), not only that no journal took the write (FALLBACK_BACKEND=none).
                log.warning(
                    "journal_refused", evaluation_id=target.evaluation_id, reason=error.detail
                )
                raise refused from error
