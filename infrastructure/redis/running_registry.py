"""The running registry in Redis: a set of ids plus one hash per evaluation.

``running_evaluations`` holds the ids; ``eval:{<id>}:running`` holds the
container info (hash-tagged with the record's cache key). The set and a hash
live in different cluster slots, so writes use non-transactional pipelines:
the database is the truth and ``replace_all`` rebuilds this index from it. A
Redis outage never fails a request: writes are skipped, reads return ``None``
so the caller asks the database instead.
"""

import builtins
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import redis.asyncio as redis
from redis.typing import EncodableT, FieldT

from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from infrastructure.redis.connection import RedisConnection, RedisUnavailableError

logger = logging.getLogger(__name__)

RUNNING_SET = "running_evaluations"


def running_key(evaluation_id: str) -> str:
    return f"eval:{{{evaluation_id}}}:running"


def _to_hash(info: RunningInfo) -> dict[FieldT, EncodableT]:
    fields: dict[FieldT, EncodableT] = {
        "evaluation_id": info.evaluation_id,
        "status": info.status.value,
    }
    if info.executor_id is not None:
        fields["executor_id"] = info.executor_id
    if info.container_id is not None:
        fields["container_id"] = info.container_id
    if info.started_at is not None:
        fields["started_at"] = info.started_at.isoformat()
    return fields


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _from_hash(raw: Mapping[bytes | str, bytes | str]) -> RunningInfo | None:
    """The stored info, or ``None`` for a missing or unreadable hash."""
    fields = {_text(key): _text(value) for key, value in raw.items()}
    try:
        started = fields.get("started_at")
        return RunningInfo(
            evaluation_id=EvaluationId(fields["evaluation_id"]),
            status=EvaluationStatus(fields["status"]),
            executor_id=fields.get("executor_id"),
            container_id=fields.get("container_id"),
            started_at=datetime.fromisoformat(started) if started else None,
        )
    except (KeyError, ValueError):
        return None


class RedisRunningRegistry:
    """``RunningRegistry`` on Redis; every key is ``prefix + name``."""

    def __init__(self, connection: RedisConnection, prefix: str = "") -> None:
        self._connection = connection
        self._prefix = prefix
        self._set_key = prefix + RUNNING_SET

    def _hash_key(self, evaluation_id: str) -> str:
        return self._prefix + running_key(evaluation_id)

    async def track(self, info: RunningInfo) -> None:
        key = self._hash_key(info.evaluation_id)

        async def write(client: redis.Redis) -> object:
            pipe = client.pipeline(transaction=False)
            pipe.delete(key)
            pipe.hset(key, mapping=_to_hash(info))
            pipe.sadd(self._set_key, info.evaluation_id)
            return await pipe.execute()

        await self._quietly(write)

    async def untrack(self, evaluation_id: EvaluationId) -> None:
        key = self._hash_key(evaluation_id)

        async def write(client: redis.Redis) -> object:
            pipe = client.pipeline(transaction=False)
            pipe.srem(self._set_key, evaluation_id)
            pipe.delete(key)
            return await pipe.execute()

        await self._quietly(write)

    async def get(self, evaluation_id: EvaluationId) -> RunningInfo | None:
        key = self._hash_key(evaluation_id)

        async def read(client: redis.Redis) -> dict[bytes | str, bytes | str]:
            return await client.hgetall(key)

        try:
            return _from_hash(await self._connection.execute(read))
        except RedisUnavailableError:
            return None

    async def list(self) -> builtins.list[RunningInfo] | None:
        async def read(client: redis.Redis) -> builtins.list[RunningInfo]:
            ids = sorted(_text(member) for member in await client.smembers(self._set_key))
            if not ids:
                return []
            pipe = client.pipeline(transaction=False)
            for evaluation_id in ids:
                pipe.hgetall(self._hash_key(evaluation_id))
            hashes: builtins.list[dict[bytes | str, bytes | str]] = await pipe.execute()
            infos = [_from_hash(raw) for raw in hashes]
            return [info for info in infos if info is not None]

        try:
            return await self._connection.execute(read)
        except RedisUnavailableError:
            return None

    async def replace_all(self, infos: builtins.list[RunningInfo]) -> None:
        wanted = {info.evaluation_id for info in infos}

        async def write(client: redis.Redis) -> object:
            members = await client.smembers(self._set_key)
            stale = {_text(member) for member in members} - wanted
            pipe = client.pipeline(transaction=False)
            for evaluation_id in stale:
                pipe.delete(self._hash_key(evaluation_id))
            for info in infos:
                key = self._hash_key(info.evaluation_id)
                pipe.delete(key)
                pipe.hset(key, mapping=_to_hash(info))
            pipe.delete(self._set_key)
            if wanted:
                pipe.sadd(self._set_key, *sorted(wanted))
            return await pipe.execute()

        await self._quietly(write)

    async def _quietly(self, write: Callable[[redis.Redis], Awaitable[object]]) -> None:
        """Run a write; an outage only costs the index, which ``replace_all`` restores."""
        try:
            await self._connection.execute(write)
        except RedisUnavailableError:
            return
