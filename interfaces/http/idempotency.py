"""``Idempotency-Key`` on POST, PUT and DELETE (the IETF httpapi draft), at the HTTP edge.

A write sent again with the same key and the same request (method, path, query and
body) gets the first answer again and changes nothing; the same key with another
request is a 422; a key whose first request is still running is a 409 with
``Retry-After``. Keys belong to the caller (its API key's name), so two callers
never see each other's answers. An answer of 5xx, or a request that ended before
its body was read, is not kept: the retry runs the write.

A plain ASGI layer after the access check (the caller is known) around the route, so
the body is hashed as the handler reads it, uploads included, without holding it.
"""

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial

import anyio
from dishka import AsyncContainer
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.openapi.spec import OpenAPIResponse, OpenAPIType, Parameter, Schema
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
from domain.access import ANONYMOUS
from interfaces.background import periodic
from interfaces.http.errors import problem
from interfaces.settings import Settings

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


def _key_of(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _HEADER_KEY:
            return _parse_key(value.decode("latin-1"))
    return None


def _parse_key(raw: str) -> str:
    """The key, from a structured-field string (``"…"``) or a bare token."""
    key = raw.strip()
    if len(key) > 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or not all("!" <= ch <= "~" for ch in key):
        raise problem(
            HTTP_400_BAD_REQUEST,
            "Invalid request",
            f"{HEADER}: must be 1 to {MAX_KEY_LENGTH} visible ASCII characters",
            "invalid-request",
            errors=[{"field": HEADER, "message": "must be 1 to 255 visible ASCII characters"}],
        )
    return key


def _caller_of(scope: Scope) -> str:
    caller = scope.get("state", {}).get("caller")
    return caller.name if caller is not None else ANONYMOUS.name


def _fingerprint_start(scope: HTTPScope) -> "hashlib._Hash":
    """The hash of what names the request (method, path, query); its body follows."""
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["raw_path"], scope["query_string"]):
        digest.update(part)
        digest.update(b"\0")
    return digest


def _has_body(scope: HTTPScope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class _Exchange:
    """The request body hashed as the handler reads it; the answer held until it is kept.

    The answer leaves only after ``keep`` has stored it, so a client that has its answer
    finds it stored (a quick retry is a replay, not a 409). An answer past
    ``MAX_KEPT_BODY`` is sent on as it comes and not kept.
    """

    def __init__(
        self,
        scope: HTTPScope,
        receive: Receive,
        send: Send,
        keep: Callable[[StoredResponse | None], Awaitable[None]],
    ) -> None:
        self.digest = _fingerprint_start(scope)
        # A request without a body (a DELETE) is whole before its handler reads anything.
        self.body_read = not _has_body(scope)
        self._receive = receive
        self._send = send
        self._keep = keep
        self._start: HTTPResponseStartEvent | None = None
        self._body = bytearray()
        self.settled = False  # kept or released

    async def receive(self) -> ReceiveMessage:
        message = await self._receive()
        if message["type"] == "http.request":
            self.digest.update(message.get("body", b""))
            if not message.get("more_body", False):
                self.body_read = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._start = message
            return
        if message["type"] != "http.response.body" or self._start is None:
            await self._send(message)
            return
        self._body += message.get("body", b"")
        more = message.get("more_body", False)
        if more and len(self._body) <= MAX_KEPT_BODY:
            return
        start, body = self._start, bytes(self._body)
        self._start, self._body = None, bytearray()
        with anyio.CancelScope(shield=True):
            await self._keep(None if more else self._answer(start, body))
        self.settled = True
        await self._send(start)
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    def _answer(self, start: HTTPResponseStartEvent, body: bytes) -> StoredResponse | None:
        """What a retry gets again: ``None`` when this answer must not be kept."""
        status = start["status"]
        if not self.body_read or status >= 500:
            return None
        headers = tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in start.get("headers", [])
            if name.lower() not in _NOT_REPLAYED
        )
        return StoredResponse(status=status, headers=headers, body=body)


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
    """Claims the key, runs the write once, keeps its answer; a retry gets the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._keys: IdempotencyKeys | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] not in _WRITES:
            await self._app(scope, receive, send)
            return
        await self._write(scope, receive, send)

    async def _write(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        key = _key_of(scope)
        if key is None:
            await self._app(scope, receive, send)
            return
        keys = self._keys
        if keys is None:
            container: AsyncContainer = scope["app"].state.dishka_container
            keys = self._keys = await container.get(IdempotencyKeys)
        caller = _caller_of(scope)
        held = await keys.claim(caller, key)
        if held is not None:
            await self._answer_again(held, scope, receive, send)
            return

        async def keep(answer: StoredResponse | None) -> None:
            if answer is None:
                await keys.release(caller, key)
            else:
                await keys.complete(caller, key, exchange.digest.hexdigest(), answer)

        exchange = _Exchange(scope, receive, send, keep)
        try:
            await self._app(scope, exchange.receive, exchange.send)
        finally:
            if not exchange.settled:  # no answer left: an error, or a client gone
                with anyio.CancelScope(shield=True):
                    await keys.release(caller, key)

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
            raise problem(
                HTTP_422_UNPROCESSABLE_ENTITY,
                "Invalid request",
                f"{HEADER}: already used for a different request",
                "idempotency-key-reused",
                errors=[{"field": HEADER, "message": "already used for a different request"}],
            )
        await _replay(held.response, send)


def document_header(app: Litestar) -> None:
    """Name the header on every write operation of the app's OpenAPI document."""
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
    for path in (app.openapi_schema.paths or {}).values():
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


async def _purge(container: AsyncContainer, _stopping: anyio.Event) -> None:
    keys = await container.get(IdempotencyKeys)
    await keys.purge()


@asynccontextmanager
async def idempotency_expiry(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """While the app runs: expired keys deleted at start and every ten minutes (or TTL)."""
    interval = min(PURGE_INTERVAL_S, float(settings.idempotency.ttl_s))
    async with periodic("idempotency keys", interval, partial(_purge, container)):
        yield
