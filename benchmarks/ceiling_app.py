"""The HTTP ceilings: a minimal Litestar app, served exactly like the service.

``uvicorn --factory benchmarks.ceiling_app:create_app`` with the same workers, loop
and HTTP parser as the service. ``GET /`` answers a small JSON object: what the
service gets relative to it is what its own work costs per request. ``GET /cached``
answers a record-sized JSON value read from Redis with one redis-py ``GET`` (when
``REDIS_URL`` is set): the floor of any request that reads a shared cache, as
get_hot does, before the service does anything of its own.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import msgspec
from litestar import Litestar, Response, get
from redis.asyncio import Redis

CACHED_KEY = "bench:ceiling:{record}"
# About the size of a get_hot record as cached (code, preview, metadata).
CACHED_VALUE = msgspec.json.encode(
    {
        "id": "eval_20260101_000000_abcdef",
        "code": "print('hello')\n" * 20,
        "status": "completed",
        "output": "x" * 600,
        "metadata": {"suite": "bench", "attempt": 1},
        "version": 3,
    }
)

_redis: Redis | None = None
_key = CACHED_KEY  # with REDIS_KEY_PREFIX, set once at start-up


@get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@get("/cached", media_type="application/json")
async def cached() -> Response[bytes]:
    assert _redis is not None, "REDIS_URL is not set"
    body = cast("bytes | None", await _redis.get(_key))  # no decode_responses: bytes
    return Response(body or b"null", media_type="application/json")


@asynccontextmanager
async def _lifespan(_: Litestar) -> AsyncIterator[None]:
    global _redis, _key  # noqa: PLW0603 - one client per worker process, as the service has
    url = os.environ.get("REDIS_URL")
    if url is None:
        yield
        return
    _key = os.environ.get("REDIS_KEY_PREFIX", "") + CACHED_KEY
    _redis = Redis.from_url(url)
    await _redis.set(_key, CACHED_VALUE)
    try:
        yield
    finally:
        await _redis.aclose()


def create_app() -> Litestar:
    return Litestar(route_handlers=[hello, cached], lifespan=[_lifespan])
