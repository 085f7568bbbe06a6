"""The versioned cache in Redis.

Each entry is a hash ``{v: version, d: bytes}``; a tombstone has no ``d``. The
compare-and-set runs as one Lua script, so a reader re-filling an old version
and a writer publishing a newer one cannot interleave between the version check
and the write. Outages are swallowed: ``get`` is a miss, writes are no-ops.
"""

import logging

import redis.asyncio as redis

from infrastructure.redis.connection import RedisConnection, RedisUnavailableError

logger = logging.getLogger(__name__)

# KEYS[1] key; ARGV[1] version; ARGV[2] ttl (s); ARGV[3] "1" when ARGV[4] holds data.
# Returns 1 when written, 0 when an equal or newer entry was kept.
PUT_IF_NEWER = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'hash' then
  local current = redis.call('HGET', KEYS[1], 'v')
  if current and tonumber(current) >= tonumber(ARGV[1]) then
    return 0
  end
end
if kind ~= 'none' then
  redis.call('DEL', KEYS[1])
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[1])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


class RedisCache:
    """``Cache`` on Redis; keys are ``prefix + key`` (the caller's hash tags are kept)."""

    def __init__(self, connection: RedisConnection, ttl_seconds: int, prefix: str = "") -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._connection = connection
        self._ttl_seconds = ttl_seconds
        self._prefix = prefix
        self._put_script = connection.client.register_script(PUT_IF_NEWER)

    @property
    def hits(self) -> int:
        return self._connection.stats.hits

    @property
    def misses(self) -> int:
        return self._connection.stats.misses

    async def get(self, key: str) -> bytes | None:
        full_key = self._prefix + key

        async def read(client: redis.Redis) -> bytes | None:
            value = await client.hget(full_key, "d")
            return value.encode() if isinstance(value, str) else value

        try:
            value = await self._connection.execute(read)
        except RedisUnavailableError:
            value = None
        if value is None:
            self._connection.stats.misses += 1
        else:
            self._connection.stats.hits += 1
        return value

    async def put_if_newer(self, key: str, version: int, value: bytes | None) -> None:
        full_key = self._prefix + key
        args: list[str | int | bytes] = [version, self._ttl_seconds]
        args += ["0"] if value is None else ["1", value]

        async def write(client: redis.Redis) -> object:
            return await self._put_script(keys=[full_key], args=args, client=client)

        try:
            await self._connection.execute(write)
        except RedisUnavailableError:
            return

    async def delete(self, key: str) -> None:
        full_key = self._prefix + key

        async def remove(client: redis.Redis) -> int:
            return await client.delete(full_key)

        try:
            await self._connection.execute(remove)
        except RedisUnavailableError:
            return
