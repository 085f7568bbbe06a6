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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio
from dishka import AsyncContainer
from litestar.enums import ScopeType
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
)
from litestar.types import (
    ASGIApp,
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
    if len(key) >= 2 and key[0] == key[-1] == '"':
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
    """The request body hashed as the handler reads it, and the answer as it is sent."""

    def __init__(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        self.digest = _fingerprint_start(scope)
        # A request without a body (a DELETE) is whole before its handler reads anything.
        self.body_read = not _has_body(scope)
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.kept = True
        self._receive = receive
        self._send = send

    async def receive(self) -> ReceiveMessage:
        message = await self._receive()
        if message["type"] == "http.request":
            self.digest.update(message.get("body", b""))
            if not message.get("more_body", False):
                self.body_read = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", [])
                if name.lower() not in _NOT_REPLAYED
            ]
        elif message["type"] == "http.response.body" and self.kept:
            self.body += message.get("body", b"")
            self.kept = len(self.body) <= MAX_KEPT_BODY
        await self._send(message)

    def answer(self) -> StoredResponse | None:
        """What a retry gets again: ``None`` when this answer must not be kept."""
        if not (self.body_read and self.kept) or self.status == 0 or self.status >= 500:
            return None
        return StoredResponse(
            status=self.status, headers=tuple(self.headers), body=bytes(self.body)
        )


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
        exchange = _Exchange(scope, receive, send)
        try:
            await self._app(scope, exchange.receive, exchange.send)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await keys.release(caller, key)
            raise
        answer = exchange.answer()
        with anyio.CancelScope(shield=True):
            if answer is None:
                await keys.release(caller, key)
            else:
                await keys.complete(caller, key, exchange.digest.hexdigest(), answer)

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


async def _purge(container: AsyncContainer, _stopping: anyio.Event) -> None:
    keys = await container.get(IdempotencyKeys)
    await keys.purge()


@asynccontextmanager
async def idempotency_expiry(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """While the app runs: expired keys deleted at start and every ten minutes (or TTL)."""
    interval = min(PURGE_INTERVAL_S, float(settings.idempotency.ttl_s))
    async with periodic("idempotency keys", interval, partial(_purge, container)):
        yield
