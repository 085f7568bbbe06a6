"""OpenTelemetry traces, only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` asks for them.

Unset, the app gets no middleware, no plugin and no patched driver: the hot path is
the one measured in docs/decisions/0020-hot-read-path.md
([ADR 0021](../../docs/decisions/0021-traces-only-when-asked.md)). Set, each request
is one server span (Litestar's plugin, outermost, so it continues the caller's
``traceparent`` and times the whole request) named by method and route template once
routing has found it, with a child span per SQL statement (asyncpg on PostgreSQL, which
also carries SQLAlchemy's statements there; the SQLAlchemy engine on SQLite) and per
Redis command. The other ``OTEL_*`` variables (service name, protocol, sampler, batch
sizes, headers) keep their SDK meaning.

The driver instrumentors patch classes for the whole process, so they are installed
when the app starts and removed when it stops; one a caller installed already (the
``opentelemetry-instrument`` launcher) is left as it is.
"""

import importlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from dishka import AsyncContainer
from litestar.enums import ScopeType
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.types import ASGIApp, Receive, Scope, Send
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE
from sqlalchemy.ext.asyncio import AsyncEngine

from interfaces.http.observability import UNMETERED
from interfaces.settings import Settings, SettingsError, StorageBackend

DEFAULT_SERVICE_NAME = "crucible-storage"
# The same attribute name as the access log's field, so a request's log line and its
# span are found by one search.
REQUEST_ID_ATTRIBUTE = "request_id"


def tracing_for(settings: Settings, provider: TracerProvider | None = None) -> "Tracing | None":
    """The app's tracing when the endpoint is set, else ``None`` (nothing installed).

    ``provider`` replaces the OTLP exporting one (tests give one with an in-memory
    exporter); the app then flushes it at shutdown but leaves closing it to the caller.
    """
    endpoint = settings.observability.otlp_endpoint
    if endpoint is None:
        return None
    if provider is not None:
        return Tracing(provider, settings, owned=False)
    exporting = TracerProvider(resource=_resource())
    exporting.add_span_processor(BatchSpanProcessor(_exporter(endpoint)))
    return Tracing(exporting, settings, owned=True)


class Tracing:
    """The spans of one app: where they go, and the driver patches while it runs."""

    def __init__(self, provider: TracerProvider, settings: Settings, *, owned: bool) -> None:
        self.provider = provider
        self._settings = settings
        self._owned = owned

    @property
    def plugin(self) -> OpenTelemetryPlugin:
        return OpenTelemetryPlugin(
            OpenTelemetryConfig(
                tracer_provider=self.provider,
                scope_span_details_extractor=_span_before_routing,
                # Internal spans per ASGI message would outnumber the SQL ones.
                exclude_spans=["receive", "send"],
                exclude=[f"^{prefix}" for prefix in UNMETERED],
            )
        )

    @property
    def middleware(self) -> list[Callable[[ASGIApp], ASGIApp]]:
        """Placed after ``EdgeMiddleware``: the route and the request id are known there."""
        return [RouteSpanMiddleware]

    @asynccontextmanager
    async def running(self, container: AsyncContainer) -> AsyncIterator[None]:
        """The driver instrumentation for the app's life; spans flushed at the end."""
        installed: list[BaseInstrumentor] = []
        try:
            _install(installed, RedisInstrumentor(), tracer_provider=self.provider)
            if self._settings.storage.backend is not StorageBackend.MEMORY:
                if self._settings.database.is_postgres:
                    _install(
                        installed,
                        AsyncPGInstrumentor(),  # type: ignore[no-untyped-call]
                        tracer_provider=self.provider,
                    )
                else:
                    engine = await container.get(AsyncEngine)
                    _install(
                        installed,
                        SQLAlchemyInstrumentor(),
                        tracer_provider=self.provider,
                        engine=engine.sync_engine,
                        # Its declared range stops below SQLAlchemy 2.1; the engine
                        # events it listens to are unchanged there (tests/integration/
                        # test_traces.py sees the statements).
                        skip_dep_check=True,
                    )
            yield
        finally:
            for instrumentor in reversed(installed):
                instrumentor.uninstrument()
            if self._owned:
                self.provider.shutdown()  # flushes the batch still waiting
            else:
                self.provider.force_flush()


class RouteSpanMiddleware:
    """Names the request's server span by its route template and tags it with the request id.

    The plugin's span starts before routing (so it can continue the caller's trace and
    time everything); only here, after routing and ``EdgeMiddleware``, are the template
    (``GET /evaluations/{eval_id}``, not one name per id) and the request id known.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            span = trace.get_current_span()
            if span.is_recording():
                route = scope.get("path_template") or scope["path"]
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute(HTTP_ROUTE, route)
                request_id = scope.get("state", {}).get("request_id")
                if request_id is not None:
                    span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)
        await self._app(scope, receive, send)


def _span_before_routing(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The method alone, as the semantic conventions name a span whose route is unknown
    (a 404 keeps it): the raw path would make one span name per record id."""
    return str(scope.get("method", "HTTP")), {}


def _install(
    installed: list[BaseInstrumentor], instrumentor: BaseInstrumentor, **kwargs: Any
) -> None:
    if instrumentor.is_instrumented_by_opentelemetry:
        return  # someone else's: theirs to remove
    instrumentor.instrument(**kwargs)
    if instrumentor.is_instrumented_by_opentelemetry:  # False when it refused the version
        installed.append(instrumentor)


def _resource() -> Resource:
    """The SDK's resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), named
    ``crucible-storage`` when neither names the service."""
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return detected


def _exporter(endpoint: str) -> SpanExporter:
    """The OTLP exporter ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` names, to the endpoint
    the SDK would use: the traces one when set, else the base one plus ``/v1/traces``."""
    protocol = (
        os.environ.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
        or os.environ.get(OTEL_EXPORTER_OTLP_PROTOCOL)
        or "http/protobuf"
    ).strip()
    traces_endpoint = os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=traces_endpoint or f"{endpoint}/v1/traces")
    if protocol == "grpc":
        try:
            grpc = importlib.import_module("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
        except ImportError:
            raise SettingsError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: install opentelemetry-exporter-otlp-proto-grpc, "
                "or use http/protobuf"
            ) from None
        exporter: SpanExporter = grpc.OTLPSpanExporter(endpoint=traces_endpoint or endpoint)
        return exporter
    raise SettingsError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: must be http/protobuf or grpc")
