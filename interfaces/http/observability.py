"""Request ids, access log lines and Prometheus metrics at the HTTP edge.

Every response carries ``X-Request-ID`` (the caller's, when it is a sane token,
else a new one) and every request ends in one access log line with method,
route, status, duration and that id: never a body, a header value or a query.
"""

import logging
import random
import re
import time
from typing import Any

from dishka.integrations.litestar import FromDishka, inject
from litestar import Response, get
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.plugins.prometheus import PrometheusController
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

from interfaces.log_config import ACCESS_LOGGER
from interfaces.providers.keys import CacheInspector

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.encode()
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ids = random.Random()  # noqa: S311 - seeded from os.urandom; ids need be unique, not secret
APP_NAME = "crucible_storage"
# Not counted: the scrape itself and the interactive docs.
UNMETERED = ("/metrics", "/docs")
_LABELS = ("method", "path", "status_code", "app_name")

access_logger = logging.getLogger(ACCESS_LOGGER)

REQUESTS = Counter("crucible_storage_requests_total", "Total requests", _LABELS)
REQUEST_SECONDS = Histogram(
    "crucible_storage_request_duration_seconds", "Request duration, in seconds", _LABELS
)
IN_PROGRESS = Gauge(
    "crucible_storage_requests_in_progress",
    "Total requests currently in progress",
    _LABELS,
    multiprocess_mode="livesum",
)
ERRORS = Counter("crucible_storage_requests_error_total", "Total errors in requests", _LABELS)


def request_id_of(scope: Scope) -> str:
    """The caller's ``X-Request-ID`` when it is a short token, else a new id."""
    for name, value in scope.get("headers", []):
        if name == _REQUEST_ID_KEY:
            candidate = value.decode("latin-1")
            if _SANE_ID.fullmatch(candidate):
                return candidate
            break
    # A log correlation id, not a secret: 128 bits from the process's seeded generator,
    # without uuid4's system call per request.
    return f"{_ids.getrandbits(128):032x}"


class _RouteMeters:
    """The labelled series of one (method, route, status): looked up once, not per request
    (``labels()`` validates, builds a key and takes a lock on every call)."""

    __slots__ = ("duration", "errors", "requests")

    def __init__(self, labels: tuple[str, str, str, str]) -> None:
        self.requests = REQUESTS.labels(*labels)
        self.duration = REQUEST_SECONDS.labels(*labels)
        self.errors = ERRORS.labels(*labels) if int(labels[2]) >= 500 else None


class RequestMeters:
    """The request metrics of one ASGI layer: each labelled series looked up once."""

    def __init__(self) -> None:
        self._meters: dict[tuple[str, str, int], _RouteMeters] = {}
        self._in_progress: dict[tuple[str, str], Any] = {}

    def gauge(self, method: str, route: str) -> Any:
        key = (method, route)
        gauge = self._in_progress.get(key)
        if gauge is None:
            gauge = self._in_progress[key] = IN_PROGRESS.labels(method, route, "200", APP_NAME)
        return gauge

    def record(self, method: str, route: str, status: int, duration: float) -> None:
        key = (method, route, status)
        meters = self._meters.get(key)
        if meters is None:
            meters = self._meters[key] = _RouteMeters((method, route, str(status), APP_NAME))
        meters.requests.inc()
        meters.duration.observe(duration)
        if meters.errors is not None:
            meters.errors.inc()


def log_access(method: str, route: str, status: int, duration: float, request_id: str) -> None:
    """The request's one access line."""
    duration_ms = round(duration * 1000, 1)
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


class EdgeMiddleware:
    """Tags each HTTP request and its response with an id, meters it and logs one line.

    One plain ASGI layer for what a request-id middleware and Litestar's
    ``PrometheusMiddleware`` did as two: that one builds a ``Request`` and looks its
    label series up four times per request, which on a cached read cost more than the
    Redis call (docs/decisions/0020-hot-read-path.md). Series and names are the same.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._meters = RequestMeters()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (_REQUEST_ID_KEY, request_id.encode())
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *(item for item in message.get("headers", ()) if item[0] != _REQUEST_ID_KEY),
                    header,
                ]
            await send(message)

        method = scope["method"]
        # The route template is known here: Litestar runs middleware after routing.
        route = scope.get("path_template") or scope["path"]
        metered = not scope["path"].startswith(UNMETERED)
        in_progress = self._meters.gauge(method, route) if metered else None
        if in_progress is not None:
            in_progress.inc()
        try:
            await self._app(scope, receive, send_with_id)
        except HTTPException as error:
            # A check inside this layer (access, idempotency) refused the request; its
            # problem is answered outside it, with this status.
            status = error.status_code
            raise
        finally:
            duration = time.perf_counter() - started
            if in_progress is not None:
                in_progress.dec()
                self._meters.record(method, route, status, duration)
            log_access(method, route, status, duration, request_id)


class MetricsController(PrometheusController):
    """``GET /metrics``: Prometheus text, not part of the JSON API's OpenAPI document.

    The cache is measured first, so its gauges (keys, memory and TTLs by key class, the
    Redis server's evictions and expirations) are as of this scrape; the measurement is
    bounded and, once slow, kept and redone in the background (docs/cache-analytics.md).
    """

    include_in_schema = False

    @get()
    @inject
    async def get(self, cache: FromDishka[CacheInspector]) -> Response[bytes]:
        await cache.inspect(detailed=True)
        answer: Response[bytes] = await PrometheusController.get.fn(self)
        return answer
