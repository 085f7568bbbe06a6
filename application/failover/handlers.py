"""The handler of each write intent, in one table.

The HTTP edge, the failover replay and the journal's read model all run a write
through this table, so a write replayed late is the same code as a write served on
time. Each intent names its result type, so ``run`` is typed by the intent it gets.
"""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

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
from application.ports.use_case_locator import UseCaseLocator
from application.use_cases.celery_update import ApplyCeleryUpdate, CeleryOutcome
from application.use_cases.create_evaluation import CreateEvaluation
from application.use_cases.delete_evaluation import DeleteEvaluation
from application.use_cases.evaluation_content import AttachPayload
from application.use_cases.events import RecordEvent
from application.use_cases.logs import AppendLog
from application.use_cases.update_evaluation import UpdateEvaluation
from domain.evaluation import Evaluation
from domain.timeline import EvaluationEvent, LogChunk

I = TypeVar("I", bound=WriteIntent[Any])  # noqa: E741
R = TypeVar("R")


Handler = Callable[[UseCaseLocator, Target, I], Awaitable[Any]]
_HANDLERS: dict[type[WriteIntent[Any]], Handler[Any]] = {}


def _handles(kind: type[I]) -> Callable[[Handler[I]], Handler[I]]:
    def register(handler: Handler[I]) -> Handler[I]:
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


class WriteHandlers:
    """Runs an intent through its handler, building only the use case it needs."""

    def __init__(self, locate: UseCaseLocator) -> None:
        self._locate = locate

    async def run(self, intent: WriteIntent[R], target: Target) -> R:
        handler = _HANDLERS[type(intent)]
        # The table pairs each intent with the handler that answers its ``R``.
        return cast("R", await handler(self._locate, target, intent))
