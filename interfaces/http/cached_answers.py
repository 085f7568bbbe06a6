"""``GET /evaluations/{id}`` of a cached record, answered before routing and the
request scope (docs/decisions/0035-cached-answers.md).

A cached read needs the caller's tenant, the journal's word that no write of the
record waits for replay, and the cache's copy: nothing of a request's container. This
layer answers exactly those requests, with the handler's bytes and headers, the same
access line and metrics; anything else, or anything it cannot answer from the cache
(a miss, a journaled write, a key it does not accept), goes on to the app unchanged,
whose answer (the record from the database, a 401, a 404) is then the one sent.
"""

import logging
import time
from dataclasses import dataclass

from dishka import AsyncContainer
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.routes import HTTPRoute
from litestar.serialization import encode_json
from litestar.types import ASGIApp, Receive, Scope, Send

from application.failover.cached_reads import CachedReads
from application.services.api_keys import ApiKeyVerifier
from domain.access import ANONYMOUS, AccessScope
from domain.errors import InvalidIdentifierError
from domain.identifiers import EvaluationId, parse_evaluation_id
from interfaces.http.conditional import etag
from interfaces.http.observability import (
    REQUEST_ID_HEADER,
    RequestMeters,
    log_access,
    request_id_of,
)
from interfaces.http.schemas.records import EvaluationBody
from interfaces.http.security import needed_scope, presented_key, required_access

ROUTE = "/evaluations/{eval_id:str}"  # the handler's path, as registered
_PREFIX = "/evaluations/"
# Requests whose answer depends on more than the record: CORS (``Origin``) and the
# explorer's session cookie take the app's middleware.
_ANSWERED_BY_APP = frozenset({b"origin", b"cookie"})
_CONTENT_TYPE = (b"content-type", b"application/json")
_REQUEST_ID = REQUEST_ID_HEADER.encode()

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnsweredRoute:
    """What the layer takes from the app's own route, so the two cannot drift apart."""

    template: str  # the access line's and the metrics' route
    needed: AccessScope | None  # the scope a key needs; None: the route is public
    taken: frozenset[str]  # ``/evaluations/<segment>`` routes of their own, not ids


class CachedRecordAnswers:
    """The outermost layer: a cache hit of ``GET /evaluations/{id}`` (no query) answered
    here, every other request passed on."""

    def __init__(self, app: ASGIApp, container: AsyncContainer, route: AnsweredRoute) -> None:
        self.app = app
        self._container = container
        self._route = route
        self._reads: CachedReads | None = None
        self._verifier: ApiKeyVerifier | None = None
        self._meters = RequestMeters()
        self._in_progress = self._meters.gauge("GET", route.template)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == ScopeType.HTTP
            and scope["method"] == "GET"
            and not scope["query_string"]
            and scope["path"].startswith(_PREFIX)
            and await self._answered(scope, send)
        ):
            return
        await self.app(scope, receive, send)

    async def _answered(self, scope: Scope, send: Send) -> bool:
        raw_id = scope["path"][len(_PREFIX) :]
        if "/" in raw_id or raw_id in self._route.taken or scope.get("root_path"):
            return False
        if any(name in _ANSWERED_BY_APP for name, _ in scope["headers"]):
            return False
        try:
            evaluation_id = parse_evaluation_id(raw_id)
        except InvalidIdentifierError:
            return False  # the app answers its 422
        started = time.perf_counter()
        self._in_progress.inc()
        try:
            return await self._answer(scope, send, evaluation_id, started)
        finally:
            self._in_progress.dec()

    async def _answer(
        self, scope: Scope, send: Send, evaluation_id: EvaluationId, started: float
    ) -> bool:
        try:
            found = await self._cached(scope, evaluation_id)
        except Exception:
            # The app meets the same failure and answers it (a problem, logged there).
            logger.warning("a cached answer failed; the app answers instead", exc_info=True)
            return False
        if found is None:
            return False
        version, body = found
        request_id = request_id_of(scope)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"etag", etag(version).encode()),
                        _CONTENT_TYPE,
                        (b"content-length", str(len(body)).encode()),
                        (_REQUEST_ID, request_id.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body, "more_body": False})
        finally:
            duration = time.perf_counter() - started
            template = self._route.template
            self._meters.record("GET", template, 200, duration)
            log_access("GET", template, 200, duration, request_id)
        return True

    async def _cached(self, scope: Scope, evaluation_id: EvaluationId) -> tuple[int, bytes] | None:
        """The record's version and answer body, when the caller may read it and the cache
        alone can answer; else None (the app answers: a 401 or 403, the database's record)."""
        if self._reads is None or self._verifier is None:
            self._reads = await self._container.get(CachedReads)
            self._verifier = await self._container.get(ApiKeyVerifier)
        caller = ANONYMOUS
        if self._verifier.enabled:
            secret = presented_key(scope["headers"])
            found = None if secret is None else self._verifier.verify(secret)
            needed = self._route.needed
            if found is None or (needed is not None and not found.scope.grants(needed)):
                return None
            caller = found
        evaluation = await self._reads.get(caller.tenant, evaluation_id)
        if evaluation is None:
            return None
        return evaluation.version, encode_json(EvaluationBody.of(evaluation))


def answered_route(app: Litestar) -> AnsweredRoute:
    """The app's ``GET /evaluations/{eval_id}``: its route template, the scope its access
    check asks (``required_access``, as the access middleware reads it), and its
    neighbours."""
    (route,) = (route for route in app.routes if route.path == ROUTE)
    assert isinstance(route, HTTPRoute)
    (handler,) = (handler for handler in route.route_handlers if "GET" in handler.http_methods)
    access = required_access(handler, "GET", route.path)
    taken = frozenset(
        segment
        for other in app.routes
        if other.path.startswith(_PREFIX)
        and "/" not in (segment := other.path.removeprefix(_PREFIX))
        and "{" not in segment
    )
    return AnsweredRoute(template=route.path_format, needed=needed_scope(access), taken=taken)


def answer_cached_reads(app: Litestar) -> None:
    """Install ``CachedRecordAnswers`` around the app's handler (after ``setup_dishka``)."""
    app.asgi_handler = CachedRecordAnswers(
        app.asgi_handler, app.state.dishka_container, answered_route(app)
    )
