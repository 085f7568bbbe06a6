"""The Litestar application factory: the HTTP edge around one dishka container."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import swagger_ui_bundle
from dishka import AsyncContainer, Provider, make_async_container
from dishka.integrations.litestar import DishkaRouter, setup_dishka
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Server
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin
from litestar.plugins.prometheus import PrometheusController
from litestar.static_files import create_static_files_router

from application.use_cases.running_evaluations import RebuildRunningRegistry
from interfaces.http.controllers.content import ContentController
from interfaces.http.controllers.docs import openapi_json, openapi_yaml
from interfaces.http.controllers.evaluations import EvaluationController
from interfaces.http.controllers.running import RunningController
from interfaces.http.controllers.storage import StorageController
from interfaces.http.controllers.timeline import TimelineController
from interfaces.http.errors import EXCEPTION_MAP, internal_error_handler
from interfaces.http.observability import RequestIdMiddleware, prometheus_config
from interfaces.providers import build_providers
from interfaces.settings import Settings, load_settings

logger = logging.getLogger("storage_service")
API_VERSION = "1.0.0"
DOCS_ASSETS = "/docs/assets"


def create_app(settings: Settings | None = None, *override_providers: Provider) -> Litestar:
    """Build the app; tests pass ``override_providers`` to swap adapters."""
    settings = settings or load_settings()
    container = make_async_container(
        *build_providers(settings), *override_providers, context={Settings: settings}
    )

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await _rebuild_running_registry(container)
        try:
            yield
        finally:
            await container.close()

    app = Litestar(
        route_handlers=[
            DishkaRouter(
                "",
                route_handlers=[
                    EvaluationController,
                    RunningController,
                    TimelineController,
                    ContentController,
                    StorageController,
                ],
            ),
            openapi_json,
            openapi_yaml,
            PrometheusController,
            create_static_files_router(
                path=DOCS_ASSETS,
                directories=[swagger_ui_bundle.swagger_ui_path],
                include_in_schema=False,
            ),
        ],
        openapi_config=_openapi_config(),
        plugins=[
            ProblemDetailsPlugin(
                ProblemDetailsConfig(exception_to_problem_detail_map=EXCEPTION_MAP)
            )
        ],
        exception_handlers={Exception: internal_error_handler},
        middleware=[RequestIdMiddleware(), prometheus_config().middleware],
        request_max_body_size=settings.max_request_bytes,
        lifespan=[lifespan],
    )
    setup_dishka(container, app)
    return app


async def _rebuild_running_registry(container: AsyncContainer) -> None:
    """Make the running registry agree with the database before serving."""
    try:
        async with container() as request_container:
            rebuild = await request_container.get(RebuildRunningRegistry)
            count = await rebuild.execute()
        logger.info("running registry rebuilt with %d evaluation(s)", count)
    except Exception:  # the service still serves: the registry falls back to the database
        logger.exception("could not rebuild the running registry at start")


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Crucible Storage Service",
        version=API_VERSION,
        description=(
            "One API for evaluation records, outputs, logs and events, stored in "
            "PostgreSQL or SQLite, files and Redis with routing by size."
        ),
        servers=[Server(url="/")],
        path="/docs",
        render_plugins=[
            SwaggerRenderPlugin(
                path="/",
                js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                standalone_preset_js_url=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' href='{DOCS_ASSETS}/favicon-32x32.png'>",
            )
        ],
        use_handler_docstrings=True,
    )
