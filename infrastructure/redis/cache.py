"""The versioned cache in Redis.

Each entry is a hash ``{v: version, d: bytes}``; a tombstone has no ``d``, and an
entry a warm-up wrote has ``w: 1`` (its hits count as warming's, whichever process
warmed; any later write replaces the hash and so the mark). The
compare-and-set runs as one Lua script, so a reader re-filling an old version
and a writer publishing a newer one cannot interleave between the version check
and the write. Outages are swallowed: ``get`` is a miss, writes are no-ops.

A skipped write is remembered, because Redis may still hold the entry it was
meant to replace (a timeout, or the breaker open while Redis kept its data):
serving that entry would serve the record as it was before the change until
``CACHE_TTL``. So every key whose ``put_if_newer`` or ``delete`` could not
reach Redis is *unsynced* in this process:

* while a key is unsynced, ``get`` of it is a miss and writes of it are not
  sent (a fill could be stale, and the key is about to be fenced anyway);
* at the start of the next cache call that reaches Redis, this process first
  *repairs*: it lays a fence on every unsynced key (a tombstone at version
  ``FENCE_VERSION``, above any real one, living ``fence_ttl_seconds``), then
  forgets them. The fence replaces the stale entry and refuses every fill
  while it lives, including a fill in flight from a read made before the
  change; after it expires the next read fills the key from the database;
* beyond ``max_unsynced`` keys the process stops counting and falls back to
  *flush all*: every ``get`` is a miss and no write is sent until the repair
  deletes every cache entry under the prefix (``SCAN`` + ``UNLINK`` on
  ``<prefix>eval:{*}``; Redis globs treat braces literally and the pattern must
  end in ``}``, so the running registry's ``eval:<id>:running`` keys, which have
  no braces, are kept). Deleting does not fence: only a read begun before the outage and
  finished after the flush could still fill a stale entry.

The repair happens per process, on that process's next cache call: until then
other processes sharing the Redis may still serve the stale entry, and if the
process makes no further cache call (it stopped), the entry lives until its
TTL. A restart of a process forgets its unsynced keys.
"""

import itertools
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as redis

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.ports.cache import Cache
from infrastructure.arguments import require_positive
from infrastructure.metrics import cache_lookup
from infrastructure.redis.connection import RedisConnection, RedisUnavailableError

logger = logging.getLogger(__name__)

# KEYS[1] key; ARGV[1] version; ARGV[2] ttl (s); ARGV[3] "1" when ARGV[4] holds data;
# ARGV[5] "1" when a warm-up writes it. Returns 1 when written, 0 when an equal or newer
# entry was kept.
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
if ARGV[3] == '1' and ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[4], 'w', '1')
elseif ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[1])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

# Above every real entry version (2 * record version), exact as a Lua double.
FENCE_VERSION = 2**62
FENCE_TTL_SECONDS = 10
MAX_UNSYNCED = 100_000
_REPAIR_BATCH = 1_000

_Operation = Callable[[redis.Redis], Awaitable[object]]


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


class RedisCache(Cache):
    """``Cache`` on Redis; keys are ``prefix + key`` (the caller's hash tags are kept)."""

    def __init__(
        self,
        connection: RedisConnection,
        ttl_seconds: int,
        prefix: str = "",
        *,
        fence_ttl_seconds: int = FENCE_TTL_SECONDS,
        max_unsynced: int = MAX_UNSYNCED,
    ) -> None:
        require_positive(
            ttl_seconds=ttl_seconds, fence_ttl_seconds=fence_ttl_seconds, max_unsynced=max_unsynced
        )
        self._connection = connection
        self._ttl_seconds = ttl_seconds
        self._fence_ttl_seconds = fence_ttl_seconds
        self._max_unsynced = max_unsynced
        self._prefix = prefix
        self._put_script = connection.client.register_script(PUT_IF_NEWER)
        self._unsynced: set[str] = set()  # full keys
        self._flush_all = False
        self._repairing = False

    @property
    def hits(self) -> int:
        return self._connection.stats.hits

    @property
    def misses(self) -> int:
        return self._connection.stats.misses

    @property
    def unsynced(self) -> int:
        """Keys this process could not write and has not fenced yet."""
        return len(self._unsynced)

    @property
    def flush_pending(self) -> bool:
        """Too many keys went unsynced: every entry is deleted on recovery."""
        return self._flush_all

    async def get(self, key: str) -> bytes | None:
        full_key = self._prefix + key
        if self._flush_all or self._unsynced:  # checked here: most reads have nothing to repair
            await self._repair()

        async def read(client: redis.Redis) -> list[bytes | str | None]:
            found: list[bytes | str | None] = await client.hmget(full_key, ["d", "w"])
            return found

        value, warm = None, None
        if not self._suspect(full_key):
            try:
                value, warm = await self._connection.execute(read)
            except RedisUnavailableError:
                value = None
        stats = self._connection.stats
        stats.records.count(value is not None)
        cache_lookup(value is not None)
        if value is None:
            return None
        if warm is not None:
            stats.warming.served()
        return value.encode() if isinstance(value, str) else value

    async def put_if_newer(
        self, key: str, version: int, value: bytes | None, *, warm: bool = False
    ) -> None:
        full_key = self._prefix + key
        args: list[str | int | bytes] = [version, self._ttl_seconds]
        args += ["0"] if value is None else ["1", value, "1" if warm else "0"]

        async def write(client: redis.Redis) -> object:
            return await self._put_script(keys=[full_key], args=args, client=client)

        if await self._write(full_key, write) == 1 and warm:
            self._connection.stats.warming.filled()

    async def delete(self, key: str) -> None:
        full_key = self._prefix + key

        async def remove(client: redis.Redis) -> int:
            return await client.delete(full_key)

        await self._write(full_key, remove)

    async def clear(self) -> int:
        try:
            deleted = await self._connection.execute(self._flush_entries)
        except RedisUnavailableError as exc:
            raise BackendUnavailableError(Backend.REDIS, str(exc)) from exc
        self._flush_all = False  # every entry an outage may have left stale is gone now
        return deleted

    def _suspect(self, full_key: str) -> bool:
        return self._flush_all or full_key in self._unsynced

    async def _write(self, full_key: str, operation: _Operation) -> object:
        """The operation's reply; ``None`` when it was not sent or did not reach Redis."""
        await self._repair()
        if self._suspect(full_key):
            return None  # the repair fences (or flushes) this key; nothing sent now is trusted
        try:
            return await self._connection.execute(operation)
        except RedisUnavailableError:
            self._mark_unsynced(full_key)
            return None

    def _mark_unsynced(self, full_key: str) -> None:
        """Remember a key whose write may not have reached Redis."""
        if self._flush_all:
            return
        self._unsynced.add(full_key)
        if len(self._unsynced) > self._max_unsynced:
            logger.warning(
                "redis cache: more than %d keys could not be written; "
                "every cache entry will be deleted once Redis answers",
                self._max_unsynced,
            )
            self._unsynced.clear()
            self._flush_all = True

    async def _repair(self) -> None:
        """Fence the unsynced keys (or flush every entry) before anything else is sent."""
        if self._repairing or not (self._flush_all or self._unsynced):
            return
        self._repairing = True
        try:
            if self._flush_all:
                deleted = await self._connection.execute(self._flush_entries)
                self._flush_all = False
                logger.warning("redis cache: deleted %d entries after an outage", deleted)
            while self._unsynced:
                batch = list(itertools.islice(self._unsynced, _REPAIR_BATCH))
                await self._connection.execute(self._fencer(batch))
                self._unsynced.difference_update(batch)
        except RedisUnavailableError:
            return  # still unreachable: keys stay unsynced, the next call tries again
        finally:
            self._repairing = False

    def _fencer(self, full_keys: list[str]) -> _Operation:
        args: list[str | int | bytes] = [FENCE_VERSION, self._fence_ttl_seconds, "0"]

        async def fence(client: redis.Redis) -> object:
            if self._connection.cluster:  # a cluster pipeline cannot carry scripts
                return [
                    await self._put_script(keys=[full_key], args=args, client=client)
                    for full_key in full_keys
                ]
            pipe = client.pipeline(transaction=False)
            for full_key in full_keys:
                await self._put_script(keys=[full_key], args=args, client=pipe)
            return await pipe.execute()

        return fence

    async def _flush_entries(self, client: redis.Redis) -> int:
        """``UNLINK`` every ``<prefix>eval:{*}`` entry (not the ``eval:<id>:running`` keys)."""
        pattern = _glob_escape(self._prefix) + "eval:{*}"
        deleted = 0
        batch: list[bytes] = []
        # scan_iter walks every master of a Redis Cluster (SCAN alone sees one node).
        async for key in client.scan_iter(match=pattern, count=_REPAIR_BATCH):
            batch.append(key)
            if len(batch) >= _REPAIR_BATCH:
                deleted += await client.unlink(*batch)
                batch = []
        if batch:
            deleted += await client.unlink(*batch)
        return deleted
