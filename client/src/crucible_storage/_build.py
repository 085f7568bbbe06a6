"""The calls the operations are made of: paths, query strings, request ids, idempotency
keys and the decoding of answers."""

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar
from urllib.parse import quote

import msgspec
from msgspec import UNSET, UnsetType

from crucible_storage._plan import Call, Params, Reply, Request
from crucible_storage._upload import Upload
from crucible_storage.errors import Accepted
from crucible_storage.models import WriteAccepted

T = TypeVar("T")


def new_key() -> str:
    """A fresh idempotency key (or request id): one per logical call, kept across retries."""
    return uuid.uuid4().hex


def resource_path(*parts: str) -> str:
    return "/" + "/".join(quote(part, safe="") for part in parts)


def new_request(
    method: str,
    path: str,
    *,
    params: Params | None = None,
    headers: dict[str, str] | None = None,
    content: bytes | Upload | None = None,
) -> Request:
    return Request(
        method, path, params or {}, {"X-Request-ID": new_key(), **(headers or {})}, content
    )


def decoder_for(kind: type[T]) -> Callable[[Reply], T]:
    decoder = msgspec.json.Decoder(kind)

    def parse(reply: Reply) -> T:
        if reply.status == 202:
            accepted = msgspec.json.decode(reply.body, type=WriteAccepted)
            raise Accepted(accepted, request_id=reply.headers.get("x-request-id"))
        return decoder.decode(reply.body)

    return parse


def read(path: str, kind: type[T], params: Params | None = None) -> Call[T]:
    return Call(new_request("GET", path, params=params), decoder_for(kind))


def write(
    method: str,
    path: str,
    kind: type[T],
    *,
    body: msgspec.Struct | None = None,
    key: str | None = None,
    if_match: int | str | None = None,
) -> Call[T]:
    """A write, always with an idempotency key: the one given, else a new one."""
    headers = {"Idempotency-Key": key or new_key()}
    if if_match is not None:
        headers["If-Match"] = f'"{if_match}"' if isinstance(if_match, int) else if_match
    content = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        content = msgspec.json.encode(body)
    return Call(new_request(method, path, headers=headers, content=content), decoder_for(kind))


def or_unset(value: T | None) -> T | UnsetType:
    return UNSET if value is None else value


def query(**values: object) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            params[name] = value.isoformat()
        elif isinstance(value, (list, tuple)):
            params[name] = ",".join(value)
        else:
            params[name] = str(value)
    return params
