"""``Idempotency-Key`` on POST, PUT and DELETE (the IETF httpapi draft), at the HTTP edge.

A write sent again with the same key and the same request (method, path, query and
body) gets the first answer again and changes nothing; the same key with another
request is a 422; a key whose first request is still running is a 409 with
``Retry-After``. Keys belong to the caller (its API key's name, in its tenant), so
two callers never see each other's answers. An answer of 5xx, or a request that ended
before its body was read, is not kept: the retry runs the write.

Two plain ASGI layers: ``IdempotencyMiddleware`` after the access check (the caller is
known) claims the key and hashes the body as the handler reads it, uploads included,
without holding it; ``HeldAnswers``, around the whole app, holds the answer until the
request's scope has closed and the key's answer is stored (ADR 0022).
"""

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial

import anyio
import structlog
from dishka import AsyncContainer
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.openapi.spec import OpenAPI, OpenAPIResponse, OpenAPIType, Parameter, Schema
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
)
from litestar.types import (
    ASGIApp,
    HTTPResponseStartEvent,
    HTTPScope,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from application.failover.idempotency import IdempotencyKeys
from application.ports.idempotency_store import KeyRecord, StoredResponse
from domain.access import ANONYMOUS, Caller
from domain.tenancy import TenantId
from interfaces.background import periodic
from interfaces.http.errors import problem
from interfaces.settings import Settings
from interfaces.tenant_rounds import each_tenant

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "idempotent-replayed"
_HEADER_KEY = HEADER.lower().encode()
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
# Answers above this are not kept (the service's write answers are records: far smaller).
MAX_KEPT_BODY = 4 * 1024 * 1024
# Headers that belong to one exchange, not to the answer a retry should see again.
_NOT_REPLAYED = frozenset({b"content-length", b"date", b"server", b"set-cookie", b"x-request-id"})
PURGE_INTERVAL_S = 600.0
log = structlog.get_logger(__name__)
_HELD = "idempotency_held"  # the scope state's key of a keyed write's held answer


def _key_of(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _HEADER_KEY:
            return _parse_key(value.decode("latin-1"))
    return None


def _invalid_key(status: int, message: str, kind: str) -> ProblemDetailsException:
    """A problem naming the header as the field, like every invalid input."""
    errors = [{"field": HEADER, "message": message}]
    return problem(status, "Invalid request", f"{HEADER}: {message}", kind, errors=errors)


def _parse_key(raw: str) -> str:
    """The key, from a structured-field string (``"…"``) or a bare token."""
    key = raw.strip()
    if len(key) > 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or not all("!" <= ch <= "~" for ch in key):
        message = f"must be 1 to {MAX_KEY_LENGTH} visible ASCII characters"
        raise _invalid_key(HTTP_400_BAD_REQUEST, message, "invalid-request")
    return key


def _caller_of(scope: Scope) -> Caller:
    """Whose keys these are: the caller's name in its tenant."""
    caller: Caller | None = scope.get("state", {}).get("caller")
    return caller if caller is not None else ANONYMOUS


def _fingerprint_start(scope: HTTPScope) -> "hashlib._Hash":
    """The hash of what names the request (method, path, query); its body follows."""
    digest = hashlib.sha256()
    path = scope.get("raw_path") or scope["path"].encode()  # raw_path is optional in ASGI
    for part in (scope["method"].encode(), path, scope["query_string"]):
        digest.update(part)
        digest.update(b"\0")
    return digest


def _has_body(scope: HTTPScope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class _Claim:
    """A claimed key and its request's body, hashed as the handler reads it."""

    def __init__(self, keys: IdempotencyKeys, caller: Caller, key: str, scope: HTTPScope) -> None:
        self.keys = keys
        self.caller = caller
        self.key = key
        self.digest = _fingerprint_start(scope)
        # A request without a body (a DELETE) is whole before its handler reads anything.
        self.body_read = not _has_body(scope)

    def reading(self, receive: Receive) -> Receive:
        async def hashed() -> ReceiveMessage:
            message = await receive()
            if message["type"] == "http.request":
                self.digest.update(message.get("body", b""))
                if not message.get("more_body", False):
                    self.body_read = True
            return message

        return hashed


class _HeldAnswer:
    """A keyed write's answer, held until its key's answer is stored.

    Held outside the request's scope (its session, its transaction) so that storing the
    answer never waits on a lock the request still holds (SQLite's one writer), and so
    that a client that has its answer always finds it stored: a quick retry is a replay,
    never a 409. An answer past ``MAX_KEPT_BODY`` is sent on as it comes and not kept.
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self._start: HTTPResponseStartEvent | None = None
        self._body = bytearray()
        self._whole = False
        self._passing = False
        self.claim: _Claim | None = None

    async def send(self, message: Message) -> None:
        if self._passing:
            await self._send(message)
        elif message["type"] == "http.response.start":
            self._start = message
        elif message["type"] == "http.response.body" and self._start is not None:
            self._body += message.get("body", b"")
            self._whole = not message.get("more_body", False)
            if len(self._body) > MAX_KEPT_BODY:  # too large to keep: sent on as it comes
                self._passing = True
                await self._flush(more=not self._whole)
        else:
            await self._send(message)

    async def settle(self) -> None:
        """Store the answer (or free the key), then let the answer leave.

        A whole answer is the write's answer even when something failed after it was
        made (a scope's finaliser, a cancellation): it is kept and sent. Without one the
        key is freed, so the retry runs the write. An answer that cannot be stored still
        leaves (the write happened); its key stays in flight until its lease ends.
        """
        claim = self.claim
        if claim is not None:
            answer = None if self._passing else self._answer(claim)
            with anyio.CancelScope(shield=True):
                try:
                    if answer is None:
                        await claim.keys.release(claim.caller, claim.key)
                    else:
                        await claim.keys.complete(
                            claim.caller, claim.key, claim.digest.hexdigest(), answer
                        )
                except Exception:
                    log.exception("idempotency_answer_not_stored", key=claim.key)
        if self._whole and not self._passing:
            await self._flush(more=False)

    def _answer(self, claim: _Claim) -> StoredResponse | None:
        """What a retry gets again: ``None`` when this answer must not be kept."""
        start = self._start
        if start is None or not self._whole or not claim.body_read or start["status"] >= 500:
            return None
        headers = tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in start.get("headers", [])
            if name.lower() not in _NOT_REPLAYED
        )
        return StoredResponse(status=start["status"], headers=headers, body=bytes(self._body))

    async def _flush(self, *, more: bool) -> None:
        if self._start is not None:
            await self._send(self._start)
            self._start = None
        await self._send(
            {"type": "http.response.body", "body": bytes(self._body), "more_body": more}
        )
        self._body = bytearray()


class HeldAnswers:
    """The outermost layer for keyed writes (around dishka's request scope): holds the
    answer until ``IdempotencyMiddleware``'s claim of the key is settled."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] not in _WRITES:
            await self._app(scope, receive, send)
            return
        if not any(name == _HEADER_KEY for name, _ in scope["headers"]):
            await self._app(scope, receive, send)
            return
        held = _HeldAnswer(send)
        scope.setdefault("state", {})[_HELD] = held
        try:
            await self._app(scope, receive, held.send)
        finally:
            await held.settle()


def hold_answers(app: Litestar) -> None:
    """Install ``HeldAnswers`` around the app's handler, outside dishka's request scope."""
    app.asgi_handler = HeldAnswers(app.asgi_handler)


async def _drained_fingerprint(scope: HTTPScope, receive: Receive) -> str:
    """Read the whole body (a retry's, answered from the store) to compare it."""
    digest = _fingerprint_start(scope)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        digest.update(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return digest.hexdigest()


async def _replay(response: StoredResponse, send: Send) -> None:
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers
    ]
    headers.append((b"content-length", str(len(response.body)).encode()))
    headers.append((REPLAYED_HEADER.encode(), b"true"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


class IdempotencyMiddleware:
    """Claims the key and runs the write once; a retry gets the kept answer.

    After the access check (the caller is known); ``HeldAnswers``, outside the request's
    scope, keeps the answer once the request is over.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._keys: IdempotencyKeys | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] not in _WRITES:
            await self._app(scope, receive, send)
            return
        await self._write(scope, receive, send)

    async def _write(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        held: _HeldAnswer | None = scope.get("state", {}).get(_HELD)
        if held is None:  # HeldAnswers, around the app, saw no key on this write
            await self._app(scope, receive, send)
            return
        key = _key_of(scope)
        assert key is not None, "HeldAnswers holds only writes that carry the header"
        keys = self._keys
        if keys is None:
            container: AsyncContainer = scope["app"].state.dishka_container
            keys = self._keys = await container.get(IdempotencyKeys)
        caller = _caller_of(scope)
        record = await keys.claim(caller, key)
        if record is not None:
            await self._answer_again(record, scope, receive, send)
            return
        held.claim = claim = _Claim(keys, caller, key, scope)
        await self._app(scope, claim.reading(receive), send)

    @staticmethod
    async def _answer_again(
        held: KeyRecord, scope: HTTPScope, receive: Receive, send: Send
    ) -> None:
        if held.response is None:
            raise problem(
                HTTP_409_CONFLICT,
                "Request in progress",
                f"a request with this {HEADER} is still being processed; retry later",
                "idempotency-key-in-use",
                headers={"Retry-After": "1"},
            )
        if await _drained_fingerprint(scope, receive) != held.fingerprint:
            message = "already used for a different request"
            raise _invalid_key(HTTP_422_UNPROCESSABLE_ENTITY, message, "idempotency-key-reused")
        await _replay(held.response, send)


def document_header(document: OpenAPI) -> None:
    """Name the header on every write operation of an app's OpenAPI document."""
    header = Parameter(
        name=HEADER,
        param_in="header",
        schema=Schema(type=OpenAPIType.STRING, pattern=f"^[!-~]{{1,{MAX_KEY_LENGTH}}}$"),
        description=(
            "Makes a retry safe: the same key and request get the first answer again "
            "(Idempotent-Replayed: true); another request under the key is a 422, a key "
            "still in flight a 409 with Retry-After. Kept IDEMPOTENCY_TTL_S per caller."
        ),
    )
    for path in (document.paths or {}).values():
        for operation in (path.post, path.put, path.patch, path.delete):
            if operation is None:
                continue
            operation.parameters = [*(operation.parameters or []), header]
            responses = operation.responses or {}
            invalid = responses.get("422")
            if isinstance(invalid, OpenAPIResponse):  # a 400 is problem+json like every error
                responses["400"] = replace(
                    invalid, description=f"Malformed request or {HEADER}; problem+json"
                )


async def purge_expired_keys(
    container: AsyncContainer, settings: Settings, stopping: anyio.Event
) -> dict[TenantId, int]:
    """One purge per tenant of its expired keys; how many each lost."""
    keys = await container.get(IdempotencyKeys)

    async def purge(tenant: TenantId) -> int:
        purged = await keys.purge(tenant)
        if purged:
            log.info("idempotency_keys_purged", tenant=tenant, purged=purged)
        return purged

    return await each_tenant("idempotency keys", settings.access.tenants, purge, stopping)


@asynccontextmanager
async def idempotency_expiry(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """While the app runs: expired keys deleted at start and every ten minutes (or TTL)."""
    interval = min(PURGE_INTERVAL_S, float(settings.idempotency.ttl_s))
    async with periodic(
        "idempotency keys", interval, partial(purge_expired_keys, container, settings)
    ):
        yield
