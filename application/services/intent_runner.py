"""Runs a write intent through the use case that serves it.

The HTTP edge, the failover replay and the journal's read model all write
through this one dispatch, so a write replayed late is the same code as a write
served on time.
"""

from application.intents import (
    AppendLogIntent,
    AttachPayloadIntent,
    CeleryIntent,
    CreateIntent,
    DeleteIntent,
    Intent,
    RecordEventIntent,
    UpdateIntent,
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
from domain.identifiers import EvaluationId
from domain.timeline import EvaluationEvent, LogChunk

WriteResult = Evaluation | CeleryOutcome | LogChunk | EvaluationEvent | None


class IntentRunner:
    def __init__(self, locate: UseCaseLocator) -> None:
        self._locate = locate

    async def run(
        self,
        evaluation_id: EvaluationId,
        intent: Intent,
        *,
        expected_version: int | None = None,
        acknowledged: bool = False,
    ) -> WriteResult:
        """``acknowledged``: the write was answered already (a replay), so a generated id
        that is taken meanwhile is a conflict, not a reason to pick another id."""
        get = self._locate.get
        match intent:
            case CreateIntent(new=new, generated_id=generated_id):
                create = await get(CreateEvaluation)
                return await create.execute(new, generated_id=generated_id and not acknowledged)
            case UpdateIntent(changes=changes):
                update = await get(UpdateEvaluation)
                return await update.execute(
                    evaluation_id, changes, expected_version=expected_version
                )
            case DeleteIntent():
                delete = await get(DeleteEvaluation)
                await delete.execute(evaluation_id, expected_version=expected_version)
                return None
            case CeleryIntent(update=celery):
                return await (await get(ApplyCeleryUpdate)).execute(evaluation_id, celery)
            case AppendLogIntent(content=content, last_update=last_update):
                return await (await get(AppendLog)).execute(evaluation_id, content, last_update)
            case RecordEventIntent(event=event):
                return await (await get(RecordEvent)).execute(evaluation_id, event)
            case AttachPayloadIntent(kind=kind, payload=payload):
                return await (await get(AttachPayload)).execute(evaluation_id, kind, payload)
