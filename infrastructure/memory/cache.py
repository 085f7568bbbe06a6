"""The versioned cache in process memory (no ``REDIS_URL``).

Same rules as the Redis cache: an entry is replaced only by a strictly higher
version (or once it has expired), a ``None`` value is a tombstone that reads as
a miss, entries expire ``ttl_seconds`` after they were written, and the cache
holds at most ``max_entries`` (least recently used go first). Nothing here
awaits, so each method is atomic on the event loop.
"""

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from application.backends import Backend
from application.ports.cache import Cache
from application.queries import (
    KEY_SAMPLE,
    BackendReport,
    MetricValue,
    count_key_patterns,
    count_ttl_buckets,
)
from infrastructure.arguments import require_positive
from infrastructure.memory.inspector import MemoryInspector
from infrastructure.metrics import cache_lookup


@dataclass(frozen=True, slots=True)
class _Entry:
    version: int
    value: bytes | None
    expires_at: float


def hit_rate(hits: int, misses: int) -> float | None:
    lookups = hits + misses
    return round(hits / lookups, 4) if lookups else None


class MemoryCache(Cache):
    """``Cache`` in an ordered dict with TTL, LRU bound and hit/miss counters."""

    def __init__(
        self,
        ttl_seconds: int,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        require_positive(ttl_seconds=ttl_seconds, max_entries=max_entries)
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0
        # Entries dropped to keep within ``max_entries`` (expiry is not counted).
        self.evictions = 0

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        if entry is None or entry.value is None:
            self.misses += 1
            cache_lookup(hit=False)
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        cache_lookup(hit=True)
        return entry.value

    async def put_if_newer(self, key: str, version: int, value: bytes | None) -> None:
        current = self._live(key)
        if current is not None and current.version >= version:
            return
        self._entries[key] = _Entry(version, value, self._clock() + self.ttl_seconds)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def clear(self) -> int:
        live, tombstones = self.counts()
        self._entries.clear()
        return live + tombstones

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= self._clock():
            del self._entries[key]
            return None
        return entry

    def counts(self) -> tuple[int, int]:
        """(live entries, live tombstones), dropping expired entries on the way."""
        now = self._clock()
        for key in [k for k, e in self._entries.items() if e.expires_at <= now]:
            del self._entries[key]
        tombstones = sum(1 for entry in self._entries.values() if entry.value is None)
        return len(self._entries) - tombstones, tombstones

    def remaining(self) -> list[tuple[str, float, int]]:
        """(key, seconds to live, bytes of key and value) of every unexpired entry."""
        now = self._clock()
        return [
            (key, entry.expires_at - now, len(key) + len(entry.value or b""))
            for key, entry in self._entries.items()
            if entry.expires_at > now
        ]


class MemoryCacheInspector(MemoryInspector):
    name: str = Backend.CACHE

    def __init__(self, cache: MemoryCache) -> None:
        self._cache = cache

    async def inspect(self, *, detailed: bool = False) -> BackendReport:
        cache = self._cache
        entries, tombstones = cache.counts()
        details: dict[str, MetricValue] = {}
        listings: dict[str, list[str]] = {}
        if detailed:
            details = {
                "tombstones": tombstones,
                "max_entries": cache.max_entries,
                "ttl_seconds": cache.ttl_seconds,
                **self._distribution(),
            }
            listings["keys"] = sorted(key for key, _, _ in cache.remaining())[:KEY_SAMPLE]
        return self.healthy(
            metrics={
                "entries": entries,
                "hits": cache.hits,
                "misses": cache.misses,
                "hit_rate": hit_rate(cache.hits, cache.misses),
                "evictions": cache.evictions,
            },
            details=details,
            listings=listings,
        )

    def _distribution(self) -> dict[str, MetricValue]:
        """Keys by pattern, TTLs by bucket and bytes held, named as the Redis inspector does."""
        remaining = self._cache.remaining()
        figures: dict[str, MetricValue] = {
            **count_key_patterns(key for key, _, _ in remaining),
            **count_ttl_buckets(ttl for _, ttl, _ in remaining),
        }
        figures["ttl_sampled_keys"] = len(remaining)
        figures["used_memory_bytes"] = sum(size for _, _, size in remaining)
        return figures
