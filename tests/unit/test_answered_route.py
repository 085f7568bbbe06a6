"""The cached-answer layer reads its route, access scope and neighbours off the app, so a
change to the handler's route or access changes what the layer checks too."""

from pathlib import Path

from litestar import Litestar, get

from domain.access import AccessScope
from interfaces.http.app import create_app
from interfaces.http.cached_answers import AnsweredRoute, answered_route
from interfaces.http.security import ADMIN
from interfaces.settings import load_settings


def test_the_service_route_asks_a_read_key_and_leaves_running_alone(tmp_path: Path) -> None:
    settings = load_settings(
        {},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'evaluations.db'}"},
        storage={"file_storage_path": str(tmp_path / "files")},
    )
    route = answered_route(create_app(settings))
    assert route == AnsweredRoute(
        template="/evaluations/{eval_id}", needed=AccessScope.READ, taken=frozenset({"running"})
    )


def test_a_route_that_asks_more_is_checked_for_more() -> None:
    @get("/evaluations/{eval_id:str}", opt=ADMIN)
    async def admin_only(eval_id: str) -> str:
        return eval_id

    @get("/evaluations/{eval_id:str}/events")
    async def below(eval_id: str) -> str:
        return eval_id

    @get("/evaluations/search")
    async def beside() -> str:
        return ""

    route = answered_route(Litestar([admin_only, below, beside]))
    assert route.needed is AccessScope.ADMIN
    assert route.taken == frozenset({"search"})
