"""API keys at the edge: one check for every route, and the caller it establishes.

A route's required access comes from its ``opt["access"]`` when set, else from
its method: reads need ``read``, everything else ``write``. The interactive
docs follow ``DOCS_PUBLIC``. The explorer's session cookie names a key and
grants at most ``read``, so a forged cross-site request can never write.
"""

import hashlib
from collections.abc import Iterable
from typing import Any, Literal

from dishka import AsyncContainer
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.status_codes import HTTP_401_UNAUTHORIZED, HTTP_403_FORBIDDEN
from litestar.types import ASGIApp, Receive, Scope, Send

from application.services.api_keys import ApiKeyVerifier
from domain.access import ANONYMOUS, AccessScope, Caller
from domain.audit import AuditContext
from interfaces.acting import act_as
from interfaces.http.errors import problem
from interfaces.settings import Settings

Access = Literal["public", "docs", "read", "write", "admin"]
ACCESS = "access"  # the route handler ``opt`` key
PUBLIC: dict[str, Any] = {ACCESS: "public"}
ADMIN: dict[str, Any] = {ACCESS: "admin"}
SESSION_KEY = "api_key_name"
SESSION_COOKIE = "crucible_session"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DOCS_PATHS = ("/docs", "/openapi.json", "/openapi.yaml")
_API_KEY_HEADER = b"x-api-key"
_AUTHORIZATION_HEADER = b"authorization"


def required_access(handler: BaseRouteHandler, method: str, path: str) -> Access:
    declared: Access | None = handler.opt.get(ACCESS)
    if declared is not None:
        return declared
    if method == "OPTIONS":  # says which methods exist, and CORS preflights carry no key
        return "public"
    if path.startswith(_DOCS_PATHS):
        return "docs"
    return "read" if method in _SAFE_METHODS else "write"


def needed_scope(access: Access) -> AccessScope | None:
    """The scope a key needs for ``access``: none for a public route; the docs, when not
    public, ask ``read``."""
    if access == "public":
        return None
    return AccessScope.READ if access == "docs" else AccessScope(access)


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer`` (the first of each, as the
    request's raw ASGI headers list them); never from the URL."""
    api_key = authorization = None
    for name, value in headers:
        if name == _API_KEY_HEADER and api_key is None:
            api_key = value.decode("latin-1")
        elif name == _AUTHORIZATION_HEADER and authorization is None:
            authorization = value.decode("latin-1")
    if api_key:
        return api_key.strip()
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


class AccessMiddleware:
    """The one access check: 401 without a known key, 403 when its scope is too small.

    A plain ASGI layer after routing (the route's ``opt`` is in the scope) rather than a
    Litestar guard, which copies the route handler (some sixty attributes) on every call
    (docs/decisions/0020-hot-read-path.md). It runs after the session middleware, so the
    explorer's cookie is decoded by then.
    """

    def __init__(self, app: ASGIApp, *, docs_public: bool) -> None:
        self._app = app
        self._docs_public = docs_public
        self._verifier: ApiKeyVerifier | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            await self._check(scope, scope["method"])
        await self._app(scope, receive, send)

    async def _check(self, scope: Scope, method: str) -> None:
        verifier = self._verifier
        if verifier is None:
            container: AsyncContainer = scope["app"].state.dishka_container
            verifier = self._verifier = await container.get(ApiKeyVerifier)
        if not verifier.enabled:
            _establish(scope, ANONYMOUS)
            return
        access = required_access(scope["route_handler"], method, scope["path"])
        needed = needed_scope(access)
        if needed is None or (access == "docs" and self._docs_public):
            return
        caller = _caller(scope, verifier)
        if caller is None:
            raise problem(
                HTTP_401_UNAUTHORIZED,
                "API key required",
                "send a valid key in X-API-Key or Authorization: Bearer",
                "unauthorized",
                headers={"WWW-Authenticate": 'Bearer realm="crucible-storage"'},
            )
        if not caller.scope.grants(needed):
            raise problem(
                HTTP_403_FORBIDDEN,
                "Insufficient scope",
                f"the key {caller.name!r} has scope {caller.scope.value}; "
                f"this needs {needed.value}",
                "forbidden",
            )
        _establish(scope, caller)


def access_middleware(settings: Settings) -> DefineMiddleware:
    return DefineMiddleware(AccessMiddleware, docs_public=settings.access.docs_public)


def _establish(scope: Scope, caller: Caller) -> None:
    """Leave the caller on the request and as the actor of what the handler changes."""
    state = scope.setdefault("state", {})
    state["caller"] = caller
    act_as(
        AuditContext(actor=caller.name, request_id=state.get("request_id"), tenant=caller.tenant)
    )


def _caller(scope: Scope, verifier: ApiKeyVerifier) -> Caller | None:
    secret = presented_key(scope["headers"])
    if secret is not None:
        return verifier.verify(secret)
    session = scope.get("session")
    name = session.get(SESSION_KEY) if isinstance(session, dict) else None
    key = verifier.named(name) if isinstance(name, str) else None
    if key is None:
        return None  # no session, or its key was removed since
    # A cookie rides along on cross-site requests: it never grants more than reading.
    return Caller(name=key.name, scope=AccessScope.READ, tenant=key.tenant)


def session_config(settings: Settings) -> CookieBackendConfig | None:
    """The explorer's encrypted session cookie, when keys are configured.

    Its secret is derived from the configured keys, so every worker and restart
    shares it and changing the keys signs everyone out.
    """
    if not settings.access.api_keys:
        return None
    material = b"crucible-session" + b"".join(key.digest for key in settings.access.api_keys)
    return CookieBackendConfig(
        secret=hashlib.sha256(material).digest(),
        key=SESSION_COOKIE,
        httponly=True,
        samesite="strict",
        max_age=8 * 3600,
        exclude_opt_key="no_session",
    )
