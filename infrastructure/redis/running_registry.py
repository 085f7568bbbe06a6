"""The running registry in Redis: a set of ids plus one hash per evaluation.

``running_evaluations`` holds the ids; ``eval:{<id>}:running`` holds the
container info (hash-tagged with the record's cache key). The set and a hash
live in different cluster slots, so writes use non-transactional pipelines:
the database is the truth and ``rebuild`` rewrites this index from it. A
Redis outage never fails a request: writes are skipped, reads return ``None``
so the caller asks the database instead.

The index is only trusted while ``running_evaluations:state`` (a hash, no TTL)
says so:

* ``built`` is set by a rebuild that nothing raced. When Redis loses the index
  (restart without persistence, ``FLUSHDB``, eviction) the field goes with it,
  ``list`` answers ``None`` and the caller rebuilds from the database.
* ``writes`` counts ``track``/``untrack`` calls. A rebuild reads it before
  loading from the database and sets ``built`` only if it is unchanged
  afterwards; otherwise a change committed during the load may have been
  overwritten by the older view, so the rebuild clears ``built`` instead.
* A write that fails (timeout, breaker open, error reply) may leave Redis with
  the entry as it was before the change. This process then answers ``None``
  from ``list`` and, on its next registry call that reaches Redis, first
  clears ``built`` and bumps ``writes``, so every process distrusts the index
  until the next rebuild. Until that call, other processes may still list the
  stale entry.
"""

import builtins
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import redis.asyncio as redis
from redis.asyncio.client import Pipeline
from redis.typing import EncodableT, FieldT

from application.ports.running_registry import LoadActive
from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from infrastructure.redis.connection import RedisConnection, RedisUnavailableError

logger = logging.getLogger(__name__)

RUNNING_SET = "running_evaluations"
STATE = "running_evaluations:state"

# KEYS[1] state hash; ARGV[1] ``writes`` as read when the rebuild began; ARGV[2] a timestamp.
# Returns 1 when the index is trusted again, 0 when a write raced the rebuild.
FINISH_REBUILD = """
local writes = redis.call('HGET', KEYS[1], 'writes') or '0'
if writes == ARGV[1] then
  redis.call('HSET', KEYS[1], 'built', ARGV[2])
  return 1
end
redis.call('HDEL', KEYS[1], 'built')
return 0
"""


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
        self._state_key = prefix + STATE
        self._finish_script = connection.client.register_script(FINISH_REBUILD)
        # A write of this process failed and the other processes have not been told yet.
        self._dirty = False
        self._failures = 0

    def _hash_key(self, evaluation_id: str) -> str:
        return self._prefix + running_key(evaluation_id)

    def _distrust(self, pipe: Pipeline) -> None:
        """Queue what tells every process to distrust the index (and any running rebuild)."""
        pipe.hdel(self._state_key, "built")
        pipe.hincrby(self._state_key, "writes", 1)

    async def track(self, info: RunningInfo) -> None:
        key = self._hash_key(info.evaluation_id)

        async def write(client: redis.Redis) -> object:
            pipe = client.pipeline(transaction=False)
            # The counter first: a rebuild finishing in between must see this write coming.
            pipe.hincrby(self._state_key, "writes", 1)
            pipe.delete(key)
            pipe.hset(key, mapping=_to_hash(info))
            pipe.sadd(self._set_key, info.evaluation_id)
            return await pipe.execute()

        await self._write(write)

    async def untrack(self, evaluation_id: EvaluationId) -> None:
        key = self._hash_key(evaluation_id)

        async def write(client: redis.Redis) -> object:
            pipe = client.pipeline(transaction=False)
            pipe.hincrby(self._state_key, "writes", 1)
            pipe.srem(self._set_key, evaluation_id)
            pipe.delete(key)
            return await pipe.execute()

        await self._write(write)

    async def get(self, evaluation_id: EvaluationId) -> RunningInfo | None:
        key = self._hash_key(evaluation_id)

        async def read(client: redis.Redis) -> dict[bytes | str, bytes | str]:
            return await client.hgetall(key)

        try:
            return _from_hash(await self._connection.execute(read))
        except RedisUnavailableError:
            return None

    async def list(self) -> builtins.list[RunningInfo] | None:
        if self._dirty:
            await self._tell_others()
            return None

        async def read(client: redis.Redis) -> builtins.list[RunningInfo] | None:
            pipe = client.pipeline(transaction=False)
            pipe.hexists(self._state_key, "built")
            pipe.smembers(self._set_key)
            built, members = await pipe.execute()
            if not built:
                return None
            ids = sorted(_text(member) for member in members)
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

    async def rebuild(self, load: LoadActive) -> builtins.list[RunningInfo]:
        failures = self._failures
        dirty = self._dirty

        async def begin(client: redis.Redis) -> str:
            pipe = client.pipeline(transaction=False)
            if dirty:
                self._distrust(pipe)
            pipe.hget(self._state_key, "writes")
            replies = await pipe.execute()
            return _text(replies[-1]) if replies[-1] is not None else "0"

        try:
            writes = await self._connection.execute(begin)
        except RedisUnavailableError:
            return await load()  # Redis is unreachable: the index stays as it is
        if dirty and self._failures == failures:
            self._dirty = False
        infos = await load()

        wanted = {info.evaluation_id for info in infos}

        async def replace(client: redis.Redis) -> object:
            members = await client.smembers(self._set_key)
            stale = {_text(member) for member in members} - wanted
            pipe = client.pipeline(transaction=False)
            for info in infos:
                key = self._hash_key(info.evaluation_id)
                pipe.delete(key)
                pipe.hset(key, mapping=_to_hash(info))
            if wanted:
                pipe.sadd(self._set_key, *sorted(wanted))
            if stale:
                pipe.srem(self._set_key, *sorted(stale))
            for evaluation_id in stale:
                pipe.delete(self._hash_key(evaluation_id))
            return await pipe.execute()

        async def finish(client: redis.Redis) -> object:
            # A write of this process that failed during the load may be missing from it.
            expected = writes if self._failures == failures else "stale"
            built_at = datetime.now(UTC).isoformat()
            return await self._finish_script(
                keys=[self._state_key], args=[expected, built_at], client=client
            )

        if await self._write(replace):
            await self._write(finish)
        return infos

    async def _write(self, write: Callable[[redis.Redis], Awaitable[object]]) -> bool:
        """Run a write after telling the others about an earlier failure; False if it failed."""
        if self._dirty and not await self._tell_others():
            self._failures += 1
            return False
        try:
            await self._connection.execute(write)
        except RedisUnavailableError:
            self._dirty = True
            self._failures += 1
            return False
        return True

    async def _tell_others(self) -> bool:
        """Mark the index untrusted in Redis after a failed write of this process."""

        async def write(client: redis.Redis) -> object:
            pipe = client.pipeline(transaction=False)
            self._distrust(pipe)
            return await pipe.execute()

        failures = self._failures
        try:
            await self._connection.execute(write)
        except RedisUnavailableError:
            return False
        if self._failures == failures:
            self._dirty = False
        return True
