import msgspec
from dishka.integrations.litestar import FromDishka
from litestar import Controller, Response, get, post
from litestar.response import Stream
from litestar.status_codes import HTTP_204_NO_CONTENT

from application.use_cases.celery_update import ApplyCeleryUpdate, CeleryUpdate
from application.use_cases.evaluation_content import GetCompleteEvaluation, ReadPayload
from domain.payload import PayloadKind
from interfaces.http.params import EvalIdPath, evaluation_id
from interfaces.http.schemas import (
    CeleryUpdateBody,
    CeleryUpdateResult,
    CompleteEvaluationBody,
    EvaluationBody,
    EventBody,
)

TEXT = "text/plain; charset=utf-8"


class ContentController(Controller):
    path = "/evaluations/{eval_id:str}"
    tags = ["Evaluations"]

    @get("/complete", summary="The record with full output, error, logs and events")
    async def complete(
        self, eval_id: EvalIdPath, use_case: FromDishka[GetCompleteEvaluation]
    ) -> CompleteEvaluationBody:
        result = await use_case.execute(evaluation_id(eval_id))
        fields = msgspec.structs.asdict(EvaluationBody.of(result.evaluation))
        fields.update(
            output=result.output,
            error=result.error,
            output_truncated=False,
            error_truncated=False,
        )
        return CompleteEvaluationBody(
            **fields, logs=result.logs, events=[EventBody.of(e) for e in result.events]
        )

    @get("/output", summary="The full output as text", media_type=TEXT)
    async def output(
        self, eval_id: EvalIdPath, use_case: FromDishka[ReadPayload]
    ) -> Response[bytes]:
        return await _payload(use_case, eval_id, "output")

    @get("/error", summary="The full error as text", media_type=TEXT)
    async def error(
        self, eval_id: EvalIdPath, use_case: FromDishka[ReadPayload]
    ) -> Response[bytes]:
        return await _payload(use_case, eval_id, "error")

    @post("/celery-update", status_code=200, summary="Apply a Celery task state")
    async def celery_update(
        self, eval_id: EvalIdPath, data: CeleryUpdateBody, use_case: FromDishka[ApplyCeleryUpdate]
    ) -> CeleryUpdateResult:
        update = CeleryUpdate(**msgspec.structs.asdict(data))
        outcome = await use_case.execute(evaluation_id(eval_id), update)
        return CeleryUpdateResult(
            applied=outcome.applied,
            reason=outcome.reason,
            evaluation=EvaluationBody.of(outcome.evaluation),
        )


async def _payload(
    use_case: ReadPayload, eval_id: EvalIdPath, kind: PayloadKind
) -> Response[bytes]:
    identifier = evaluation_id(eval_id)
    content = await use_case.execute(identifier, kind)
    if content.payload is None or content.chunks is None:
        return Response(b"", status_code=HTTP_204_NO_CONTENT, media_type=TEXT)
    headers = {
        "Content-Length": str(content.payload.size),
        "X-Storage-Location": content.payload.location.value,
    }
    return Stream(content.chunks, media_type=TEXT, headers=headers)  # type: ignore[return-value]
