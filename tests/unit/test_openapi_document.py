"""The OpenAPI document's per-app touches, and what building an app leaves behind.

The document is built on first use, with the touches applied then; these tests build apps
without starting them and read the document the way every docs route does.
"""

from pathlib import Path

from litestar.openapi.spec import OpenAPI, Parameter, Schema

from interfaces.http.app import create_app
from interfaces.http.controllers.evaluations import EvaluationController
from interfaces.http.idempotency import HEADER
from interfaces.settings import load_settings


def _document(tmp_path: Path, list_limit: int) -> OpenAPI:
    settings = load_settings(
        {},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'evaluations.db'}"},
        storage={"file_storage_path": str(tmp_path / "files")},
        limits={"list_limit": list_limit},
    )
    return create_app(settings).openapi_schema


def _limit_maximum(document: OpenAPI) -> float | None:
    operation = (document.paths or {})["/evaluations"].get
    assert operation is not None
    for parameter in operation.parameters or []:
        if isinstance(parameter, Parameter) and parameter.name == "limit":
            assert isinstance(parameter.schema, Schema)
            return parameter.schema.maximum
    raise AssertionError("GET /evaluations documents no limit")


def test_each_app_documents_its_own_list_limit(tmp_path: Path) -> None:
    first = _document(tmp_path / "a", 250)
    second = _document(tmp_path / "b", 40)
    assert (_limit_maximum(first), _limit_maximum(second)) == (250, 40)


def test_every_write_names_the_idempotency_header_once(tmp_path: Path) -> None:
    paths = _document(tmp_path, 100).paths or {}
    writes = 0
    for path, item in paths.items():
        for operation in (item.post, item.put, item.patch, item.delete):
            if operation is None:
                continue
            writes += 1
            names = [p.name for p in operation.parameters or [] if isinstance(p, Parameter)]
            assert names.count(HEADER) == 1, path
            assert "400" in (operation.responses or {}), path
    assert writes >= 5 and paths["/evaluations"].post is not None


def test_building_apps_leaves_the_controller_classes_as_they_were(tmp_path: Path) -> None:
    """Registering a class with dishka's router wraps its handlers in place; an app per
    registration would nest one wrapper more in every app a process builds."""
    handlers = EvaluationController.get_route_handlers
    _document(tmp_path / "a", 100)
    _document(tmp_path / "b", 100)
    assert EvaluationController.get_route_handlers is handlers
