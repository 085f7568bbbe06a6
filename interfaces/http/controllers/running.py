from dishka.integrations.litestar import FromDishka
from litestar import Controller, get

from application.use_cases.running_evaluations import (
    GetRunningEvaluation,
    ListRunningEvaluations,
)
from interfaces.http.errors import problem_responses
from interfaces.http.params import EvalIdPath, evaluation_id
from interfaces.http.schemas import RunningBody, RunningList


class RunningController(Controller):
    path = "/evaluations"
    tags = ["Running evaluations"]

    @get(
        "/running",
        summary="List evaluations holding a container",
        responses=problem_responses(503),
    )
    async def list_running(self, use_case: FromDishka[ListRunningEvaluations]) -> RunningList:
        infos = await use_case.execute()
        return RunningList(count=len(infos), evaluations=[RunningBody.of(i) for i in infos])

    @get(
        "/{eval_id:str}/running",
        summary="Container info of a running evaluation",
        responses=problem_responses(400, 404, 422, 503),
    )
    async def get_running(
        self, eval_id: EvalIdPath, use_case: FromDishka[GetRunningEvaluation]
    ) -> RunningBody:
        return RunningBody.of(await use_case.execute(evaluation_id(eval_id)))
