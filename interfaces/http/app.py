"""The Litestar application factory: the HTTP edge around one dishka container."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

import asyncpg
import swagger_ui_bundle
from dishka import AsyncContainer, Provider, make_async_container
from dishka.integrations.litestar import DishkaRouter, setup_dishka
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Server
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin
from litestar.static_files import create_static_files_router
from opentelemetry.sdk.trace import TracerProvider

from application.errors import WriteAcceptedError
from infrastructure.postgres.lookups import unindexed_lookups
from interfaces.cli.plugin import StorageCLIPlugin
from interfaces.heap import freeze_startup_objects, thaw
from interfaces.http.cached_answers import answer_cached_reads
from interfaces.http.controllers.audit import AuditController
from interfaces.http.controllers.changes import ChangesController
from interfaces.http.controllers.content import ContentController
from interfaces.http.controllers.docs import openapi_json, openapi_yaml
from interfaces.http.controllers.evaluations import EvaluationController
from interfaces.http.controllers.export import ExportController
from interfaces.http.controllers.running import RunningController
from interfaces.http.controllers.storage import StorageController
from interfaces.http.controllers.subjects import SubjectController
from interfaces.http.controllers.timeline import TimelineController
from interfaces.http.errors import (
    ProblemRequest,
    accepted_handler,
    exception_map,
    internal_error_handler,
)
from interfaces.http.explorer import explorer_router, template_config
from interfaces.http.idempotency import (
    IdempotencyMiddleware,
    document_header,
    hold_answers,
    idempotency_expiry,
)
from interfaces.http.observability import EdgeMiddleware, MetricsController
from interfaces.http.openapi_document import state_list_limit, touch_on_build
from interfaces.http.planner_statistics import planner_statistics
from interfaces.http.retention import retention
from interfaces.http.running_rebuild import rebuild_running_registries
from interfaces.http.security import access_middleware, session_config
from interfaces.http.tiering import tiering
from interfaces.http.tracing import tracing_for
from interfaces.http.warehouse import scheduled_export
from interfaces.http.warming import cache_warming
from interfaces.live import live_changes
from interfaces.providers import build_providers
from interfaces.relay import nats_relay
from interfaces.replay import replaying
from interfaces.settings import Settings, load_settings

logger = logging.getLogger("storage_service")

# Built once: DishkaRouter wraps a controller class's route handlers each time it registers
# the class, so one router per app would nest a wrapper more in every app a process builds
# (the test suite builds hundreds). Litestar copies a router into each app it joins.
api_router = DishkaRouter(
    "",
    route_handlers=[
        EvaluationController,
        RunningController,
        TimelineController,
        ContentController,
        StorageController,
        AuditController,
        ChangesController,
        ExportController,
        SubjectController,
        explorer_router,
    ],
)
API_VERSION = "1.0.0"
DOCS_ASSETS = "/docs/assets"


def create_app(
    settings: Settings | None = None,
    *override_providers: Provider,
    tracer_provider: TracerProvider | None = None,
) -> Litestar:
    """Build the app; tests pass ``override_providers`` to swap adapters and
    ``tracer_provider`` to keep the spans ``OTEL_EXPORTER_OTLP_ENDPOINT`` turns on."""
    settings = settings or load_settings()
    tracing = tracing_for(settings, tracer_provider)
    container = make_async_container(
        *build_providers(settings),
        *override_providers,
        context={Settings: settings},
    )
    sessions = session_config(settings)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        if not settings.access.api_keys:
            logger.warning(
                "no API keys configured (API_KEYS, API_KEYS_FILE): every endpoint is open "
                "to anyone who can reach %s:%d",
                settings.server.host,
                settings.server.port,
            )
        await rebuild_running_registries(container, settings.access.tenants)
        if settings.database.is_postgres:
            await _warn_of_unindexed_lookups(container)
        freeze_startup_objects()
        try:
            async with (
                tracing.running(container) if tracing else nullcontext(),
                replaying(container, settings),
                retention(container, settings),
                tiering(container, settings),
                cache_warming(container, settings),
                planner_statistics(container, settings),
                idempotency_expiry(container, settings),
                live_changes(container),
                scheduled_export(container, settings),
                nats_relay(container, settings),
            ):
                yield
        finally:
            thaw()
            await container.close()

    app = Litestar(
        route_handlers=[
            api_router,
            openapi_json,
            openapi_yaml,
            MetricsController,
            create_static_files_router(
                path=DOCS_ASSETS,
                directories=[swagger_ui_bundle.swagger_ui_path],
                include_in_schema=False,
            ),
        ],
        openapi_config=_openapi_config(),
        template_config=template_config,
        plugins=[
            ProblemDetailsPlugin(
                ProblemDetailsConfig(
                    exception_to_problem_detail_map=exception_map(
                        settings.failover.probe_interval_s
                    )
                )
            ),
            StorageCLIPlugin(),
            *([tracing.plugin] if tracing else []),
        ],
        exception_handlers={
            Exception: internal_error_handler,
            WriteAcceptedError: accepted_handler,
        },
        middleware=[
            EdgeMiddleware,
            *(tracing.middleware if tracing else []),
            *([sessions.middleware] if sessions else []),
            access_middleware(settings),
            IdempotencyMiddleware,
        ],
        cors_config=CORSConfig(allow_origins=list(settings.access.cors_origins))
        if settings.access.cors_origins
        else None,
        request_max_body_size=settings.limits.request_bytes,
        request_class=ProblemRequest,
        logging_config=None,  # interfaces.log_config formats every record; Litestar adds none
        lifespan=[lifespan],
    )
    setup_dishka(container, app)
    hold_answers(app)  # outside dishka's request scope
    if settings.cache.enabled and tracing is None:
        answer_cached_reads(app)  # outermost: a cache hit needs no request scope
    touch_on_build(app, state_list_limit(settings.limits.list_limit), document_header)
    return app


async def _warn_of_unindexed_lookups(container: AsyncContainer) -> None:
    """Once at start: search and the subject lookup scan the tenant's rows under row-level
    security unless ``crucible_lookup`` owns their functions (ADR 0032, decision 8)."""
    try:
        unindexed = await unindexed_lookups(await container.get(asyncpg.Pool))
    except Exception:  # the service still serves; the database's own errors come later
        logger.exception("could not read who owns the lookup functions")
        return
    if unindexed:
        logger.warning(
            "search and the subject lookup are not indexed under row-level security: "
            "their functions are not owned by the crucible_lookup role (README, PostgreSQL "
            "set-up); run migrate again once it exists"
        )


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Crucible Storage Service",
        version=API_VERSION,
        description=(
            "One API for evaluation records, outputs, logs and events, stored in "
            "PostgreSQL or SQLite, files and Redis with routing by size."
        ),
        servers=[Server(url="/")],
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(
                    type="apiKey", name="X-API-Key", security_scheme_in="header"
                ),
                "Bearer": SecurityScheme(type="http", scheme="bearer"),
            }
        ),
        security=[{"ApiKey": []}, {"Bearer": []}],
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
