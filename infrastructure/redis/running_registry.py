"""The running registry in Redis, in the keys the platform's storage worker writes.

``running_evaluations`` is a set of ids and ``eval:<id>:running`` a JSON string
per evaluation (both after the deployment's key prefix, which the platform
leaves empty). The worker ``SETEX``es that string (``executor_id``,
``container_id``, ``started_at``, ``timeout``; TTL ``timeout + 60``) and
``SADD``s the id once its ``PUT`` running succeeded, and deletes both after a
terminal status. This service writes the same entry, adding ``eval_id`` and
``status``, and never erases what the worker wrote: a write is a merge (one
Lua script on the one key: GET, merge, SET, the TTL kept), so the worker's
``executor_id`` (the job name its gateway kills) survives every later write,
and a rebuild merges too. Reading takes the worker's JSON as it is: no
``status`` means running, the id comes from the set member.

The keys carry no hash tag (they are the platform's names), so on Redis
Cluster the set, the entries and the state hash live in different slots:
every multi-key write is a non-transactional pipeline and the database is the
truth (ADR 0014). Those names serve ``PLATFORM_TENANT``; every other tenant has an
index of its own under qualified names (``infrastructure/redis/platform_keys.py``), kept
by the same rules. A Redis outage never fails a request: writes are skipped,
reads return ``None`` so the caller asks the database instead.

The index is only trusted while ``running_evaluations:state`` (a hash, no TTL)
says so:

* ``built`` is set by a rebuild that nothing raced. When Redis loses the index
  (restart without persistence, ``FLUSHDB``, eviction) the field goes with it,
  ``list`` answers ``None`` and the caller rebuilds from the database. A member
  without a readable entry (the worker's TTL ran out, or the worker added the
  id after this service untracked it) also makes ``list`` answer ``None``: the
  rebuild then writes the entries the database says are running and drops the
  other members.
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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import redis.asyncio as redis
from redis.asyncio.client import Pipeline

from application.ports.running_registry import LoadActive, RunningRegistry
from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.redis.connection import RedisConnection, RedisUnavailableError
from infrastructure.redis.platform_keys import PlatformKeys

logger = logging.getLogger(__name__)

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

# KEYS[1] an entry; ARGV[1] a JSON object of the fields to set. Every other field of the
# entry stays, and so does its TTL. A value that is not a JSON object is replaced (a hash,
# as some platform scripts write, gives its fields first). Returns the merged JSON.
MERGE = """
local ttl = redis.call('PTTL', KEYS[1])
local kind = redis.call('TYPE', KEYS[1])['ok']
local merged = {}
if kind == 'string' then
  local ok, decoded = pcall(cjson.decode, redis.call('GET', KEYS[1]))
  if ok and type(decoded) == 'table' and decoded[1] == nil then merged = decoded end
elseif kind == 'hash' then
  local flat = redis.call('HGETALL', KEYS[1])
  for i = 1, #flat, 2 do merged[flat[i]] = flat[i + 1] end
end
for field, value in pairs(cjson.decode(ARGV[1])) do merged[field] = value end
local encoded = cjson.encode(merged)
redis.call('SET', KEYS[1], encoded)
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return encoded
"""

# KEYS[1] the entry of an id the database says is not running. Without a TTL only this
# service wrote it: delete it. With one, the worker wrote it last: it expires on its own
# (a rebuild that raced the worker's write must not erase its executor_id).
DROP_OWN = """
if redis.call('PTTL', KEYS[1]) == -1 then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def legacy_key(evaluation_id: str) -> str:
    """The hash-tagged hash this service kept before it used the platform's keys."""
    return f"eval:{{{evaluation_id}}}:running"


def _to_json(info: RunningInfo) -> bytes:
    """The fields this service sets: the id, the status and every known container field."""
    fields: dict[str, Any] = {"eval_id": info.evaluation_id, "status": info.status.value}
    if info.executor_id is not None:
        fields["executor_id"] = info.executor_id
    if info.container_id is not None:
        fields["container_id"] = info.container_id
    if info.started_at is not None:
        fields["started_at"] = info.started_at.isoformat()
    if info.timeout is not None:
        fields["timeout"] = info.timeout
    return _encoder.encode(fields)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _seconds(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def from_entry(evaluation_id: str, raw: object) -> RunningInfo | None:
    """The info in an entry as either writer left it; ``None`` when it is missing or unreadable.

    Fields of the wrong type are taken as absent rather than failing the entry.
    """
    if not isinstance(raw, bytes | str):
        return None  # missing, or an error reply (a key of another type)
    try:
        fields = _decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    if not isinstance(fields, dict):
        return None
    try:
        status = EvaluationStatus(fields.get("status", EvaluationStatus.RUNNING.value))
    except ValueError:
        status = EvaluationStatus.RUNNING
    return RunningInfo(
        evaluation_id=EvaluationId(evaluation_id),
        status=status,
        executor_id=_string(fields.get("executor_id")),
        container_id=_string(fields.get("container_id")),
        started_at=_instant(fields.get("started_at")),
        timeout=_seconds(fields.get("timeout")),
    )


class RedisRunningRegistry(RunningRegistry):
    """``RunningRegistry`` on Redis; every key is ``prefix + name``, named by ``keys``."""

    def __init__(
        self, connection: RedisConnection, prefix: str = "", keys: PlatformKeys | None = None
    ) -> None:
        self._connection = connection
        self._prefix = prefix
        self._keys = keys or PlatformKeys()
        self._finish_script = connection.client.register_script(FINISH_REBUILD)
        # Tenants whose index a write of this process failed, not yet told to the others.
        self._dirty: set[TenantId] = set()
        self._failures = 0

    def _set_key(self, tenant: TenantId) -> str:
        return self._prefix + self._keys.running_set(tenant)

    def _state_key(self, tenant: TenantId) -> str:
        return self._prefix + self._keys.running_state(tenant)

    def _entry_key(self, tenant: TenantId, evaluation_id: str) -> str:
        return self._prefix + self._keys.running_entry(tenant, evaluation_id)

    def _merge(self, pipe: Pipeline, tenant: TenantId, info: RunningInfo) -> None:
        # EVAL, not EVALSHA: a cluster pipeline cannot load a script on the node first.
        pipe.eval(MERGE, 1, self._entry_key(tenant, info.evaluation_id), _to_json(info))

    def _distrust(self, pipe: Pipeline, tenant: TenantId) -> None:
        """Queue what tells every process to distrust the index (and any running rebuild)."""
        pipe.hdel(self._state_key(tenant), "built")
        pipe.hincrby(self._state_key(tenant), "writes", 1)

    async def track(self, tenant: TenantId, info: RunningInfo) -> None:
        async def write(client: redis.Redis) -> object:
            pipe = client.pipeline(transaction=False)
            # The counter first: a rebuild finishing in between must see this write coming.
            pipe.hincrby(self._state_key(tenant), "writes", 1)
            self._merge(pipe, tenant, info)
            pipe.sadd(self._set_key(tenant), info.evaluation_id)
            return await pipe.execute()

        await self._write(tenant, write)

    async def untrack(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        """Remove the id and its entry, as the worker does after a terminal status."""
        key = self._entry_key(tenant, evaluation_id)

        async def write(client: redis.Redis) -> object:
            pipe = client.pipeline(transaction=False)
            pipe.hincrby(self._state_key(tenant), "writes", 1)
            pipe.srem(self._set_key(tenant), evaluation_id)
            pipe.delete(key)
            return await pipe.execute()

        await self._write(tenant, write)

    async def get(self, tenant: TenantId, evaluation_id: EvaluationId) -> RunningInfo | None:
        key = self._entry_key(tenant, evaluation_id)

        async def read(client: redis.Redis) -> bytes | str | None:
            value: bytes | str | None = await client.get(key)
            return value

        try:
            info = from_entry(evaluation_id, await self._connection.execute(read))
        except RedisUnavailableError:  # also a key of another type (WRONGTYPE)
            info = None
        self._connection.stats.running.count(info is not None)
        return info

    async def list(self, tenant: TenantId) -> builtins.list[RunningInfo] | None:
        """The index, counted as a hit of the running class when it can answer."""
        found = await self._list(tenant)
        self._connection.stats.running.count(found is not None)
        return found

    async def _list(self, tenant: TenantId) -> builtins.list[RunningInfo] | None:
        if tenant in self._dirty:
            await self._tell_others(tenant)
            return None

        async def read(client: redis.Redis) -> builtins.list[RunningInfo] | None:
            pipe = client.pipeline(transaction=False)
            pipe.hexists(self._state_key(tenant), "built")
            pipe.smembers(self._set_key(tenant))
            built, members = await pipe.execute()
            if not built:
                return None
            ids = sorted(_text(member) for member in members)
            if not ids:
                return []
            pipe = client.pipeline(transaction=False)
            for evaluation_id in ids:
                pipe.get(self._entry_key(tenant, evaluation_id))
            entries = await pipe.execute(raise_on_error=False)
            infos = [from_entry(i, raw) for i, raw in zip(ids, entries, strict=True)]
            found = [info for info in infos if info is not None]
            # An id without a readable entry: only the database can say whether it runs.
            return found if len(found) == len(ids) else None

        try:
            return await self._connection.execute(read)
        except RedisUnavailableError:
            return None

    async def rebuild(self, tenant: TenantId, load: LoadActive) -> builtins.list[RunningInfo]:
        failures = self._failures
        dirty = tenant in self._dirty
        set_key = self._set_key(tenant)

        async def begin(client: redis.Redis) -> str:
            pipe = client.pipeline(transaction=False)
            if dirty:
                self._distrust(pipe, tenant)
            pipe.hget(self._state_key(tenant), "writes")
            replies = await pipe.execute()
            return _text(replies[-1]) if replies[-1] is not None else "0"

        try:
            writes = await self._connection.execute(begin)
        except RedisUnavailableError:
            return await load()  # Redis is unreachable: the index stays as it is
        if dirty and self._failures == failures:
            self._dirty.discard(tenant)
        infos = await load()

        wanted = {info.evaluation_id for info in infos}
        merged: builtins.list[object] = []

        async def replace(client: redis.Redis) -> object:
            members = {_text(member) for member in await client.smembers(set_key)}
            stale = members - wanted
            pipe = client.pipeline(transaction=False)
            for info in infos:
                self._merge(pipe, tenant, info)
            if wanted:
                pipe.sadd(set_key, *sorted(wanted))
            if stale:
                pipe.srem(set_key, *sorted(stale))
            for evaluation_id in sorted(stale):
                pipe.eval(DROP_OWN, 1, self._entry_key(tenant, evaluation_id))
            if tenant == DEFAULT_TENANT:  # the only tenant there was when they were written
                for evaluation_id in sorted(members | wanted):
                    pipe.delete(self._prefix + legacy_key(evaluation_id))
            replies = await pipe.execute()
            merged.extend(replies[: len(infos)])
            return replies

        async def finish(client: redis.Redis) -> object:
            # A write of this process that failed during the load may be missing from it.
            expected = writes if self._failures == failures else "stale"
            built_at = datetime.now(UTC).isoformat()
            return await self._finish_script(
                keys=[self._state_key(tenant)], args=[expected, built_at], client=client
            )

        if await self._write(tenant, replace):
            await self._write(tenant, finish)
            # What the entries add to the database's view: the worker's container fields.
            return [
                info.filled_from(from_entry(info.evaluation_id, raw))
                for info, raw in zip(infos, merged, strict=True)
            ]
        return infos

    async def _write(
        self, tenant: TenantId, write: Callable[[redis.Redis], Awaitable[object]]
    ) -> bool:
        """Run a write after telling the others about an earlier failure; False if it failed."""
        if tenant in self._dirty and not await self._tell_others(tenant):
            self._failures += 1
            return False
        try:
            await self._connection.execute(write)
        except RedisUnavailableError:
            self._dirty.add(tenant)
            self._failures += 1
            return False
        return True

    async def _tell_others(self, tenant: TenantId) -> bool:
        """Mark ``tenant``'s index untrusted in Redis after a failed write of this process."""

        async def write(client: redis.Redis) -> object:
            pipe = client.pipeline(transaction=False)
            self._distrust(pipe, tenant)
            return await pipe.execute()

        failures = self._failures
        try:
            await self._connection.execute(write)
        except RedisUnavailableError:
            return False
        if self._failures == failures:
            self._dirty.discard(tenant)
        return True
