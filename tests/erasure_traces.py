"""Where a marker string is stored, read from the real bytes: files (zstd frames opened),
SQLite rows, PostgreSQL rows, Redis values under a prefix and S3 objects.

Erasure tests plant a marker in everything of one subject and ask this module for every
place that still holds it.
"""

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as redis
import zstandard

from infrastructure.s3.client import S3Connection
from interfaces.settings import Settings
from tests.services import beneath_row_security

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def readable(data: bytes) -> bytes:
    """The bytes as stored, and a zstd frame's content too."""
    if data.startswith(ZSTD_MAGIC):
        try:
            return data + zstandard.ZstdDecompressor().decompressobj().decompress(data)
        except zstandard.ZstdError:
            return data
    return data


def files_holding(root: Path, marker: str) -> list[str]:
    needle = marker.encode()
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and needle in readable(path.read_bytes())
    )


def sqlite_rows_holding(path: Path, marker: str) -> list[str]:
    """Tables of a SQLite file with a row holding ``marker`` (text or blob)."""
    found = []
    with sqlite3.connect(path) as connection:
        tables = [
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                if any(_holds(value, marker) for value in row):
                    found.append(table)
                    break
    return found


def _holds(value: Any, marker: str) -> bool:
    if isinstance(value, bytes):
        return marker.encode() in readable(value)
    return isinstance(value, str) and marker in value


async def _postgres_rows_holding(url: str, marker: str) -> list[str]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
        found = []
        for (table,) in tables:
            # Each row as text; a bytea column shows as hex, so the marker is sought in both.
            count = await connection.fetchval(
                f'SELECT count(*) FROM "{table}" AS t '
                "WHERE strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0",
                marker,
                marker.encode().hex(),
            )
            if count:
                found.append(table)
        return found
    finally:
        await connection.close()


async def _redis_keys_holding(url: str, prefix: str, marker: str) -> list[str]:
    client = redis.Redis.from_url(url)
    needle = marker.encode()
    found = []
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=500):
            if any(needle in readable(value) for value in await _values(client, key)):
                found.append(key.decode())
    finally:
        await client.aclose()
    return sorted(found)


async def _values(client: Any, key: bytes) -> list[bytes]:
    """Every value stored under ``key``, as bytes (the client decodes nothing)."""
    kind = (await client.type(key)).decode()
    found: list[Any]
    if kind == "string":
        found = [await client.get(key) or b""]
    elif kind == "hash":
        found = [v for pair in (await client.hgetall(key)).items() for v in pair]
    elif kind == "set":
        found = list(await client.smembers(key))
    elif kind in ("zset", "list"):
        read = client.zrange if kind == "zset" else client.lrange
        found = list(await read(key, 0, -1))
    elif kind == "stream":
        entries = await client.xrange(key)
        found = [v for _, fields in entries for pair in fields.items() for v in pair]
    else:
        found = [kind.encode()]
    return [bytes(value) for value in found]


def places_holding(settings: Settings, marker: str) -> list[str]:
    """Every place of this deployment whose bytes still hold ``marker``."""
    places = [f"file:{name}" for name in files_holding(settings.storage.file_storage_path, marker)]
    url = settings.database.url
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        if path.exists() and not path.is_relative_to(settings.storage.file_storage_path):
            places += [f"sqlite:{table}" for table in sqlite_rows_holding(path, marker)]
    else:
        places += [
            f"postgres:{t}"
            for t in asyncio.run(_postgres_rows_holding(beneath_row_security(url), marker))
        ]
    if settings.redis.url is not None:
        keys = asyncio.run(
            _redis_keys_holding(settings.redis.url, settings.redis.key_prefix, marker)
        )
        places += [f"redis:{key}" for key in keys]
    return places


async def _s3_objects_holding(env: dict[str, str], marker: str) -> list[str]:
    connection = S3Connection(
        bucket=env["S3_BUCKET"], endpoint_url=env["S3_ENDPOINT_URL"], region=env["S3_REGION"]
    )
    await connection.open()
    found = []
    try:
        pages = connection.client.get_paginator("list_objects_v2").paginate(
            Bucket=env["S3_BUCKET"], Prefix=env["S3_PREFIX"]
        )
        async for page in pages:
            for item in page.get("Contents", []):
                answer = await connection.client.get_object(
                    Bucket=env["S3_BUCKET"], Key=item["Key"]
                )
                body = await answer["Body"].read()
                if marker.encode() in readable(body):
                    found.append(item["Key"])
    finally:
        await connection.close()
    return found


def s3_objects_holding(env: dict[str, str], marker: str) -> list[str]:
    """Keys of the objects under the service's prefix whose bytes hold ``marker``."""
    return asyncio.run(_s3_objects_holding(env, marker))
