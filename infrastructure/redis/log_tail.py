"""Log tails in Redis: ``logs:{<id>}:latest``, a hash ``{s: start, e: end, d: bytes}``.

The Lua script appends a chunk only where the tail ends, so concurrent writers
whose post-commit appends arrive out of order never leave a hole: an older chunk
is ignored, a chunk after a gap restarts the tail there. The tail keeps the last
``max_bytes`` (cut on a UTF-8 character boundary) and expires ``ttl_seconds``
after its last append. The braces are the hash tag shared with ``eval:{<id>}``, and hold
the qualified id (``<tenant>/<id>`` for a tenant but the default, ADR 0032).

A Redis outage costs nothing but speed: reads fall back to the log store. An
append that could not reach Redis leaves that evaluation's tail behind the log,
so this process reads it from the log store until it has deleted the stale tail
(at its next call that reaches Redis); the next append starts a fresh one.
"""

import redis.asyncio as redis

from application.ports.log_tail import LogTail
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId, qualified_id
from domain.timeline import LogChunk, LogSlice, slice_from
from infrastructure.arguments import require_positive
from infrastructure.redis.connection import RedisConnection, RedisUnavailableError

# KEYS[1] tail; ARGV[1] chunk offset; ARGV[2] chunk bytes; ARGV[3] max bytes; ARGV[4] ttl (s).
# Returns 1 when the chunk was taken, 0 when it was older than the tail's end.
APPEND = """
local offset = tonumber(ARGV[1])
local fields = redis.call('HMGET', KEYS[1], 's', 'e', 'd')
local start, data
if fields[2] and tonumber(fields[2]) > offset then
  return 0
elseif fields[2] and tonumber(fields[2]) == offset then
  start = tonumber(fields[1])
  data = fields[3] .. ARGV[2]
else
  start = offset
  data = ARGV[2]
end
local max = tonumber(ARGV[3])
if #data > max then
  local cut = #data - max + 1
  while cut <= #data do
    local byte = string.byte(data, cut)
    if byte < 128 or byte >= 192 then break end
    cut = cut + 1
  end
  start = start + cut - 1
  data = string.sub(data, cut)
end
redis.call('HSET', KEYS[1], 's', start, 'e', offset + #ARGV[2], 'd', data)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""


def tail_key(tenant: TenantId, evaluation_id: str) -> str:
    return f"logs:{{{qualified_id(tenant, evaluation_id)}}}:latest"


class RedisLogTail(LogTail):
    """``LogTail`` on Redis; keys are ``prefix + logs:{<qualified id>}:latest``."""

    def __init__(
        self, connection: RedisConnection, max_bytes: int, ttl_seconds: int, prefix: str = ""
    ) -> None:
        require_positive(max_bytes=max_bytes, ttl_seconds=ttl_seconds)
        self._connection = connection
        self._max_bytes = max_bytes
        self._ttl_seconds = ttl_seconds
        self._prefix = prefix
        self._append_script = connection.client.register_script(APPEND)
        # Keys of tails this process failed to update: possibly behind the log until deleted.
        self._behind: set[str] = set()

    def _key(self, tenant: TenantId, evaluation_id: EvaluationId) -> str:
        return self._prefix + tail_key(tenant, evaluation_id)

    async def append(self, tenant: TenantId, chunk: LogChunk) -> None:
        args: list[int | bytes] = [
            chunk.offset,
            chunk.content.encode("utf-8"),
            self._max_bytes,
            self._ttl_seconds,
        ]
        key = self._key(tenant, chunk.evaluation_id)

        async def write(client: redis.Redis) -> object:
            return await self._append_script(keys=[key], args=args, client=client)

        try:
            await self._catch_up()
            await self._connection.execute(write)
        except RedisUnavailableError:
            self._behind.add(key)

    async def read(
        self, tenant: TenantId, evaluation_id: EvaluationId, offset: int
    ) -> LogSlice | None:
        found = await self._read(self._key(tenant, evaluation_id), offset)
        self._connection.stats.log_tail.count(found is not None)
        return found

    async def _read(self, key: str, offset: int) -> LogSlice | None:

        async def fetch(client: redis.Redis) -> list[bytes | str | None]:
            values: list[bytes | str | None] = await client.hmget(key, ["s", "d"])
            return values

        try:
            await self._catch_up()
            if key in self._behind:
                return None
            start, data = await self._connection.execute(fetch)
        except RedisUnavailableError:
            return None
        if start is None or data is None or not int(start) <= offset <= int(start) + len(data):
            return None  # before it, or past it (the tail may lag the log): ask the store
        content = data.encode() if isinstance(data, str) else data
        return slice_from(int(start), content, offset)

    async def drop(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        key = self._key(tenant, evaluation_id)

        async def remove(client: redis.Redis) -> int:
            return await client.delete(key)

        try:
            await self._connection.execute(remove)
        except RedisUnavailableError:
            self._behind.add(key)
        else:
            self._behind.discard(key)

    async def _catch_up(self) -> None:
        """Delete the tails this process left behind; raises while Redis is unreachable."""
        if not self._behind:
            return
        behind = list(self._behind)

        async def remove(client: redis.Redis) -> int:
            return await client.delete(*behind)

        await self._connection.execute(remove)
        self._behind.difference_update(behind)
