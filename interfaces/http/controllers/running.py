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
        description="The running registry (Redis: the platform worker's `running_evaluations` "
        "and `eval:<id>:running`), or the database when the registry cannot be trusted.",
        responses=problem_responses(503),
    )
    async def list_running(self, use_case: FromDishka[ListRunningEvaluations]) -> RunningList:
        infos = await use_case.execute()
        return RunningList(running_evaluations=[RunningBody.of(i) for i in infos], count=len(infos))

    @get(
        "/{eval_id:str}/running",
        summary="Container info of a running evaluation",
        description="404 when the evaluation is not in `provisioning` or `running`. "
        "`executor_id` is the job name, from the record or else the worker's entry.",
        responses=problem_responses(400, 404, 422, 503),
    )
    async def get_running(
        self, eval_id: EvalIdPath, use_case: FromDishka[GetRunningEvaluation]
    ) -> RunningBody:
        return RunningBody.of(await use_case.execute(evaluation_id(eval_id)))
