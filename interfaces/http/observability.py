"""Request ids, access log lines and Prometheus metrics at the HTTP edge.

Every response carries ``X-Request-ID`` (the caller's, when it is a sane token,
else a new one) and every request ends in one access log line with method,
route, status, duration and that id: never a body, a header value or a query.
"""

import logging
import re
import time
import uuid

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_logger = logging.getLogger("storage_service.access")


def request_id_of(scope: Scope) -> str:
    """The caller's ``X-Request-ID`` when it is a short token, else a new id."""
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if _SANE_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestIdMiddleware(ASGIMiddleware):
    """Tags the request and its response with an id and logs one line when it ends."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableScopeHeaders.from_message(message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await next_app(scope, receive, send_with_id)
        finally:
            route = scope.get("path_template") or scope.get("path", "")
            method = scope.get("method", "-")
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            access_logger.info(
                "%s %s %d %.1fms request_id=%s",
                method,
                route,
                status,
                duration_ms,
                request_id,
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                    "request_id": request_id,
                },
            )


class MetricsController(PrometheusController):
    """``GET /metrics``: Prometheus text, not part of the JSON API's OpenAPI document."""

    include_in_schema = False


def prometheus_config() -> PrometheusConfig:
    """Request counts and latency histograms by route template (not raw path) and status."""
    return PrometheusConfig(
        app_name="crucible_storage",
        prefix="crucible_storage",
        group_path=True,
        exclude=["/metrics", "/docs"],
    )
