"""Parts of the live pages, rendered by the pages' own macros for a page to swap in.

A page re-reads a part once per change its stream announces (never on a timer) and
replaces the elements marked ``data-live-part`` by the fresh ones of the same id, so
what it shows is drawn by the same templates as a reload would draw it.
"""

from dishka.integrations.litestar import FromDishka
from litestar import Controller, get
from litestar.params import FromPath
from litestar.response import Template

from application.use_cases.events import ListEvents
from application.use_cases.get_evaluation import GetEvaluation
from application.use_cases.running_evaluations import ListRunningEvaluations
from domain.identifiers import parse_evaluation_id
from interfaces.http.explorer.live import record_parts


class ExplorerPartsController(Controller):
    path = "/parts"
    include_in_schema = False

    @get("/running", name="explorer:parts:running")
    async def running(self, use_case: FromDishka[ListRunningEvaluations]) -> Template:
        return Template("parts/running.html", context={"running": await use_case.execute()})

    @get("/evaluations/{eval_id:str}", name="explorer:parts:evaluation")
    async def evaluation(
        self,
        eval_id: FromPath[str],
        get_evaluation: FromDishka[GetEvaluation],
        list_events: FromDishka[ListEvents],
    ) -> Template:
        identifier = parse_evaluation_id(eval_id)
        context = await record_parts(identifier, get_evaluation, list_events)
        return Template("parts/evaluation.html", context=context)
