"""The HTTP ceilings: a minimal Litestar app, served exactly like the service.

``uvicorn --factory benchmarks.ceiling_app:create_app`` with the same workers, loop
and HTTP parser as the service. What the service gets relative to each route is what
its own work costs per request:

- ``GET /`` answers a small JSON object;
- ``GET /cached`` answers a record-sized JSON value read from Redis with one redis-py
  ``GET`` (when ``REDIS_URL`` is set): the floor of any request that reads a shared
  cache, as get_hot does;
- ``GET /list?status=&language=&limit=`` runs the service's own statement for that page
  (``infrastructure.postgres.evaluation_pages``: the keyset page plus one row and the
  total from ``evaluation_counters``, in one statement) on an asyncpg pool and answers
  the rows as dicts in the API's list shape, encoded by msgspec;
- ``PUT /large/{id}`` does what an update with a large output does, without the
  service: decode the JSON body with msgspec, zstd-compress the output at the blob
  store's level, write it to one file atomically (temp file, fsync, rename, fsync of
  the directory, in a worker thread) and run one ``UPDATE`` on the pool.

The two database routes need ``CEILING_DATABASE_URL`` (the benchmark's database, whose
records they read and write). ``CEILING_FILE_PATH`` is where ``/large`` writes (a
temp directory, removed at shutdown, when unset). Each worker has its own pool of
``DB_POOL_SIZE`` (10) connections, as the service has, with the JSONB codec on msgspec
and no reset query on release.
"""

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import asyncpg
import msgspec
import zstandard
from litestar import Litestar, Request, Response, get, put
from litestar.params import FromPath, FromQuery
from redis.asyncio import Redis

from application.queries import EvaluationFilter, EvaluationQuery, ListCursor
from benchmarks.ceilings import init_connection
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from infrastructure.files.blob_store import COMPRESSION_LEVEL
from infrastructure.files.durable import AtomicWrite

# The service's list statement itself, so that the two cannot drift apart.
from infrastructure.postgres.evaluation_pages import page_query
from infrastructure.sql.rows import RECORD_COLUMNS
from interfaces.http.params import encode_cursor
from interfaces.settings import DatabaseSettings, StorageSettings

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


def _default(settings: type[msgspec.Struct], name: str) -> int:
    """A setting's default, as the service declares it."""
    (field,) = (field for field in msgspec.structs.fields(settings) if field.name == name)
    return cast("int", field.default)


DEFAULT_POOL_SIZE = _default(DatabaseSettings, "pool_size")  # DB_POOL_SIZE
# Idle connections close soon: the suite runs this app beside the service, its second
# instance and the raw asyncpg ceiling on one server's connection limit.
IDLE_CONNECTION_S = 1.0
PREVIEW_SIZE = _default(StorageSettings, "preview_size")  # the output kept in the record

# The record's columns the API shows as they are; the payloads' storage columns only
# say whether output/error are previews (``*_truncated``), deleted_at is always NULL here.
API_COLUMNS = tuple(
    name
    for name in RECORD_COLUMNS
    if not name.startswith(("output_", "error_")) and name != "deleted_at"
)
UPDATE_LARGE = """
UPDATE evaluations
   SET output = $2, output_location = 'file', output_size = $3, output_key = $4,
       output_compressed = true, version = version + 1, updated_at = now()
 WHERE id = $1 AND deleted_at IS NULL
RETURNING version
"""


class _Update(msgspec.Struct):
    output: str


class _State:
    redis: Redis | None = None
    key = CACHED_KEY  # with REDIS_KEY_PREFIX, set once at start-up
    pool: asyncpg.Pool | None = None
    files: Path | None = None


_state = _State()  # one per worker process, as the service has its clients
_encoder = msgspec.json.Encoder()
_update_decoder = msgspec.json.Decoder(_Update)


def _json(body: bytes, status_code: int = 200) -> Response[bytes]:
    return Response(body, media_type="application/json", status_code=status_code)


@get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@get("/cached", media_type="application/json")
async def cached() -> Response[bytes]:
    assert _state.redis is not None, "REDIS_URL is not set"
    body = cast("bytes | None", await _state.redis.get(_state.key))  # bytes: no decoding
    return _json(body or b"null")


def _item(row: asyncpg.Record) -> dict[str, Any]:
    item = {name: row[name] for name in API_COLUMNS}
    item["output_truncated"] = row["output_location"] not in (None, "inline")
    item["error_truncated"] = row["error_location"] not in (None, "inline")
    return item


def _cursor(row: asyncpg.Record) -> str | None:
    """The service's own cursor encoding of the last row."""
    return encode_cursor(ListCursor(created_at=row["created_at"], id=EvaluationId(row["id"])))


@get("/list", media_type="application/json")
async def list_page(
    status: FromQuery[str], language: FromQuery[str], limit: FromQuery[int] = 50
) -> Response[bytes]:
    assert _state.pool is not None, "CEILING_DATABASE_URL is not set"
    where = EvaluationFilter(status=EvaluationStatus(status), language=language)
    statement, arguments = page_query(
        EvaluationQuery(filter=where, limit=limit), RECORD_COLUMNS, DEFAULT_TENANT
    )
    rows = await _state.pool.fetch(statement, *arguments)
    total = int(rows[0]["total"])  # sum() is numeric: a Decimal
    if rows[0]["id"] is None:  # only the total's row: the page is empty
        rows = []
    items = [_item(row) for row in rows[:limit]]
    has_more = len(rows) > limit
    page = {
        "evaluations": items,
        "total": total,
        "limit": limit,
        "offset": 0,
        "has_more": has_more,
        "next_cursor": _cursor(rows[limit - 1]) if has_more and limit > 0 else None,
    }
    return _json(_encoder.encode(page))


def _write_blob(directory: Path, data: bytes) -> tuple[str, int]:
    """Compress ``data`` into ``directory/output.txt.zst`` durably, as the blob store
    writes (``AtomicWrite``: temp file, fsync, rename, fsync of the directory)."""
    compressed = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL).compress(data)
    name = "output.txt.zst"
    assert _state.files is not None
    target = AtomicWrite(directory / name, _state.files)
    try:
        target.handle.write(compressed)
    except BaseException:
        target.discard()
        raise
    target.commit()
    return name, len(compressed)


@put("/large/{evaluation_id:str}", media_type="application/json", status_code=200)
async def update_large(
    evaluation_id: FromPath[str], request: Request[Any, Any, Any]
) -> Response[bytes]:
    assert _state.pool is not None, "CEILING_DATABASE_URL is not set"
    assert _state.files is not None
    output = _update_decoder.decode(await request.body()).output
    data = output.encode()
    key = f"evaluations/{evaluation_id}"
    name, stored = await asyncio.to_thread(_write_blob, _state.files / key, data)
    version = await _state.pool.fetchval(
        UPDATE_LARGE, evaluation_id, output[:PREVIEW_SIZE], len(data), f"{key}/{name}"
    )
    if version is None:
        return _json(b'{"detail": "not found"}', status_code=404)
    answer = {"id": evaluation_id, "version": version, "size": len(data), "stored": stored}
    return _json(_encoder.encode(answer))


async def _no_reset(_connection: asyncpg.Connection) -> None:
    """As the service's pool: no reset round trip on release (no session state is set)."""


@asynccontextmanager
async def _redis(_: Litestar) -> AsyncIterator[None]:
    url = os.environ.get("REDIS_URL")
    if url is None:
        yield
        return
    _state.key = os.environ.get("REDIS_KEY_PREFIX", "") + CACHED_KEY
    _state.redis = client = Redis.from_url(url)
    await client.set(_state.key, CACHED_VALUE)
    try:
        yield
    finally:
        await client.aclose()


@asynccontextmanager
async def _database(_: Litestar) -> AsyncIterator[None]:
    url = os.environ.get("CEILING_DATABASE_URL")
    if url is None:
        yield
        return
    configured = os.environ.get("CEILING_FILE_PATH")
    files = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="ceiling-"))
    _state.files = files
    _state.pool = pool = await asyncpg.create_pool(
        url,
        min_size=0,
        max_size=int(os.environ.get("DB_POOL_SIZE") or DEFAULT_POOL_SIZE),
        max_inactive_connection_lifetime=IDLE_CONNECTION_S,
        init=init_connection,
        reset=_no_reset,
    )
    try:
        yield
    finally:
        await pool.close()
        if not configured:
            shutil.rmtree(files, ignore_errors=True)


def create_app() -> Litestar:
    return Litestar(
        route_handlers=[hello, cached, list_page, update_large], lifespan=[_redis, _database]
    )
