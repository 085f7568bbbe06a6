"""API keys at the edge: one guard for every route, and the caller it establishes.

A route's required access comes from its ``opt["access"]`` when set, else from
its method: reads need ``read``, everything else ``write``. The interactive
docs follow ``DOCS_PUBLIC``. The explorer's session cookie names a key and
grants at most ``read``, so a forged cross-site request can never write.
"""

import hashlib
from typing import Any, Literal

from dishka import AsyncContainer
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.status_codes import HTTP_401_UNAUTHORIZED, HTTP_403_FORBIDDEN

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


def required_access(handler: BaseRouteHandler, method: str, path: str) -> Access:
    declared: Access | None = handler.opt.get(ACCESS)
    if declared is not None:
        return declared
    if method == "OPTIONS":  # says which methods exist, and CORS preflights carry no key
        return "public"
    if path.startswith(_DOCS_PATHS):
        return "docs"
    return "read" if method in _SAFE_METHODS else "write"


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer``; never from the URL."""
    header = connection.headers.get("x-api-key")
    if header:
        return header.strip()
    scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


async def require_access(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The one guard: 401 without a known key, 403 when its scope is too small."""
    container: AsyncContainer = connection.app.state.dishka_container
    verifier = await container.get(ApiKeyVerifier)
    if not verifier.enabled:
        _establish(connection, ANONYMOUS)
        return
    access = required_access(handler, str(connection.scope.get("method")), connection.url.path)
    if access == "public":
        return
    if access == "docs" and (await container.get(Settings)).access.docs_public:
        return
    needed = AccessScope.READ if access == "docs" else AccessScope(access)
    caller = _caller(connection, verifier)
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
            f"the key {caller.name!r} has scope {caller.scope.value}; this needs {needed.value}",
            "forbidden",
        )
    _establish(connection, caller)


def _establish(connection: ASGIConnection[Any, Any, Any, Any], caller: Caller) -> None:
    """Leave the caller on the request and as the actor of what the handler changes."""
    connection.state.caller = caller
    request_id: str | None = getattr(connection.state, "request_id", None)
    act_as(AuditContext(actor=caller.name, request_id=request_id))


def _caller(
    connection: ASGIConnection[Any, Any, Any, Any], verifier: ApiKeyVerifier
) -> Caller | None:
    secret = presented_key(connection)
    if secret is not None:
        return verifier.verify(secret)
    session = connection.scope.get("session")
    name = session.get(SESSION_KEY) if isinstance(session, dict) else None
    if not isinstance(name, str) or verifier.scope_of(name) is None:
        return None  # no session, or its key was removed since
    # A cookie rides along on cross-site requests: it never grants more than reading.
    return Caller(name=name, scope=AccessScope.READ)


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
