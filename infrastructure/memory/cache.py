"""The versioned cache in process memory (no ``REDIS_URL``).

Same rules as the Redis cache: an entry is replaced only by a strictly higher
version (or once it has expired), a ``None`` value is a tombstone that reads as
a miss, entries expire ``ttl_seconds`` after they were written, and the cache
holds at most ``max_entries`` (least recently used go first). Nothing here
awaits, so each method is atomic on the event loop. It counts its own evictions
(the LRU bound) and expirations (an expired entry found and dropped: on a read
or when the entries are counted), and the hits served by entries a warm-up wrote.
"""

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

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
from infrastructure.cache_analytics import (
    LOG_TAIL,
    RECORDS,
    RUNNING,
    Lookups,
    Removals,
    Warming,
    class_figures,
    hit_rate,
)
from infrastructure.memory.inspector import MemoryInspector
from infrastructure.memory.log_tail import MemoryLogTail
from infrastructure.memory.running_registry import MemoryRunningRegistry
from infrastructure.metrics import cache_lookup, class_removed


@dataclass(frozen=True, slots=True)
class _Entry:
    version: int
    value: bytes | None
    expires_at: float
    warm: bool = False


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
        self.lookups = Lookups(RECORDS)
        self.warming = Warming()
        # Entries dropped to keep within ``max_entries``, and dropped once expired.
        self.evictions = 0
        self.expirations = 0

    @property
    def hits(self) -> int:
        return self.lookups.hits

    @property
    def misses(self) -> int:
        return self.lookups.misses

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        hit = entry is not None and entry.value is not None
        self.lookups.count(hit)
        cache_lookup(hit)
        if entry is None or entry.value is None:
            return None
        self._entries.move_to_end(key)
        if entry.warm:
            self.warming.served()
        return entry.value

    async def put_if_newer(
        self, key: str, version: int, value: bytes | None, *, warm: bool = False
    ) -> None:
        current = self._live(key)
        if current is not None and current.version >= version:
            return
        self._entries[key] = _Entry(version, value, self._clock() + self.ttl_seconds, warm)
        self._entries.move_to_end(key)
        if warm:
            self.warming.filled()
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1
            class_removed(RECORDS, expired=False)

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
            self._expired(1)
            return None
        return entry

    def _expired(self, count: int) -> None:
        self.expirations += count
        class_removed(RECORDS, expired=True, count=count)

    def counts(self) -> tuple[int, int]:
        """(live entries, live tombstones), dropping expired entries on the way."""
        now = self._clock()
        expired = [k for k, e in self._entries.items() if e.expires_at <= now]
        for key in expired:
            del self._entries[key]
        self._expired(len(expired))
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
    """The in-process cache, and beside it the running registry and the log tail when
    they live in this process too: their figures are exact (every entry is counted)."""

    name: str = Backend.CACHE

    def __init__(
        self,
        cache: MemoryCache,
        registry: MemoryRunningRegistry | None = None,
        tail: MemoryLogTail | None = None,
    ) -> None:
        self._cache = cache
        self._registry = registry
        self._tail = tail

    async def inspect(self, *, detailed: bool = False) -> BackendReport:
        cache = self._cache
        entries, tombstones = cache.counts()
        details: dict[str, MetricValue] = {}
        listings: dict[str, list[str]] = {}
        classes: dict[str, dict[str, MetricValue]] = {}
        if detailed:
            details = {
                "tombstones": tombstones,
                "max_entries": cache.max_entries,
                "ttl_seconds": cache.ttl_seconds,
                "expirations": cache.expirations,
                **cache.warming.figures(cache.hits),
                **self._distribution(),
            }
            listings["keys"] = sorted(key for key, _, _ in cache.remaining())[:KEY_SAMPLE]
            classes = self._classes()
        return msgspec.structs.replace(
            self.healthy(
                metrics={
                    "entries": entries,
                    "hits": cache.hits,
                    "misses": cache.misses,
                    "hit_rate": hit_rate(cache.hits, cache.misses),
                    "evictions": cache.evictions,
                },
                details=details,
                listings=listings,
            ),
            classes=classes,
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

    def _classes(self) -> dict[str, dict[str, MetricValue]]:
        """Every entry of each class counted, timed and sized (the registry's and the
        tail's have no TTL here: they are dropped when their evaluation stops)."""
        cache = self._cache
        sizes = [(key, size) for key, _, size in cache.remaining()]
        ttls = [(key, ttl) for key, ttl, _ in cache.remaining()]
        lookups = {RECORDS: cache.lookups}
        removals: dict[str, Removals] = {RECORDS: (cache.evictions, cache.expirations)}
        if self._registry is not None:
            sizes += self._registry.sizes()
            lookups[RUNNING] = self._registry.lookups
            removals[RUNNING] = (0, 0)  # unbounded and without TTL: entries leave when untracked
        if self._tail is not None:
            sizes += self._tail.sizes()
            lookups[LOG_TAIL] = self._tail.lookups
            removals[LOG_TAIL] = (self._tail.evictions, 0)
        untimed = [(key, -1.0) for key, _ in sizes[len(ttls) :]]
        return class_figures((key for key, _ in sizes), ttls + untimed, sizes, lookups, removals)
