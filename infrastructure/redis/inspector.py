"""Measures the Redis cache: reachability, our keys, memory and hit rate.

Keys are counted with a bounded ``SCAN`` over our prefix (never ``KEYS``): an
inspection examines at most about ``scan_limit`` keys of a large shared server,
and ``keys_exact`` in the details says whether the count is complete. The scan (with
``INFO`` and the TTLs of a sample of the keys) is a ``KeptMeasurement``: redone on
every inspection while it is quick, else kept and redone in the background
(``measured_at``); a ``PING`` each time says whether Redis answers now. Hits and
misses are this process's own, always current. While the connection's circuit is
open the report comes back at once as unavailable.

A detailed report also breaks the figures down by key class (records, running,
log_tail, other; docs/cache-analytics.md): the scanned keys counted, the TTL sample
bucketed, and memory estimated from ``MEMORY USAGE`` of at most ``_MEMORY_SAMPLE``
keys of each class, scaled by the class's key count (``memory_sampled`` says how
many were read). Evictions and expirations are the server's (``INFO``): Redis does
not count them per key or prefix.
"""

from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from application.backends import Backend
from application.ports.backend_inspector import BackendInspector
from application.ports.health_probe import HealthProbe
from application.queries import (
    KEY_CLASSES,
    KEY_SAMPLE,
    BackendReport,
    MetricValue,
    count_key_patterns,
    count_ttl_buckets,
    key_class,
)
from infrastructure.cache_analytics import class_figures
from infrastructure.measurement import KeptMeasurement
from infrastructure.metrics import server_removals
from infrastructure.redis.connection import RedisConnection, RedisUnavailableError

_SCAN_BATCH = 1_000
_TTL_SAMPLE = 1_000
# Keys of each class whose MEMORY USAGE is read, and the elements it looks at in a hash or set.
_MEMORY_SAMPLE = 50
_MEMORY_SAMPLES = 5


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _glob_escape(prefix: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in prefix)


class _Scan:
    def __init__(self) -> None:
        self.count = 0
        self.keys: list[str] = []
        self.exact = False
        self.info: dict[str, Any] = {}
        self.ttls: list[tuple[str, int]] = []  # (key, seconds; -1: none) of the TTL sample
        self.sizes: list[tuple[str, int]] = []  # (key, bytes) of the memory sample


class RedisInspector(BackendInspector, HealthProbe):
    """``BackendInspector`` named ``cache`` for the Redis-backed cache."""

    name: str = Backend.CACHE

    def __init__(
        self, connection: RedisConnection, prefix: str = "", scan_limit: int = 10_000
    ) -> None:
        self._connection = connection
        self._prefix = prefix
        self._scan_limit = max(scan_limit, _SCAN_BATCH)
        self._scans = KeptMeasurement(self._measure)

    async def probe(self) -> BackendReport:
        """One ``PING`` (answered at once as unavailable while the circuit is open)."""
        try:
            await self._connection.execute(_ping)
        except RedisUnavailableError as exc:
            return BackendReport(
                name=self.name, type="redis", status="unavailable", error=str(exc) or "unreachable"
            )
        return BackendReport(name=self.name, type="redis", status="healthy")

    async def inspect(self, *, detailed: bool = False) -> BackendReport:
        stats = self._connection.stats
        metrics: dict[str, MetricValue] = {
            "hits": stats.hits,
            "misses": stats.misses,
            "hit_rate": stats.hit_rate,
        }
        try:
            measured = await self._scans.get()
            await self._connection.execute(_ping)  # a kept scan says nothing about now
        except RedisUnavailableError as exc:
            return BackendReport(
                name=self.name,
                type="redis",
                status="unavailable",
                metrics=metrics,
                error=str(exc) or "unreachable",
            )
        scan = measured.value
        metrics["keys"] = scan.count
        metrics["used_memory_bytes"] = scan.info.get("used_memory")
        metrics["measured_at"] = measured.measured_at.isoformat()
        details: dict[str, MetricValue] = {}
        listings: dict[str, list[str]] = {}
        classes: dict[str, dict[str, MetricValue]] = {}
        if detailed:
            details = self._details(scan)
            listings["keys"] = sorted(scan.keys)[:KEY_SAMPLE]
            classes = class_figures(scan.keys, scan.ttls, scan.sizes, stats.classes)
        return BackendReport(
            name=self.name,
            type="redis",
            status="healthy",
            metrics=metrics,
            details=details,
            listings=listings,
            classes=classes,
        )

    async def _measure(self) -> _Scan:
        """``INFO``, our keys within the scan budget, the TTLs of a sample of them and the
        memory of a smaller sample of each class (one pipeline for both samples)."""

        async def scan_keys(client: redis.Redis) -> _Scan:
            scan = await self._scan(client)
            scan.info = await client.info()
            return scan

        scan = await self._connection.execute(scan_keys)
        timed, sized = scan.keys[:_TTL_SAMPLE], _memory_sample(scan.keys)

        async def samples(client: redis.Redis) -> list[int | None]:
            pipe = client.pipeline(transaction=False)
            for key in timed:
                pipe.ttl(self._prefix + key)
            for key in sized:
                pipe.memory_usage(self._prefix + key, samples=_MEMORY_SAMPLES)
            result: list[int | None] = await pipe.execute()
            return result

        replies = await self._connection.execute(samples)
        ttls, sizes = replies[: len(timed)], replies[len(timed) :]
        # A key gone since the scan: TTL -2, no MEMORY USAGE.
        scan.ttls = [(k, t) for k, t in zip(timed, ttls, strict=True) if t is not None and t != -2]
        scan.sizes = [(k, s) for k, s in zip(sized, sizes, strict=True) if s is not None]
        server_removals(scan.info.get("evicted_keys"), scan.info.get("expired_keys"))
        return scan

    async def _scan(self, client: redis.Redis) -> _Scan:
        """Our keys (the prefix left out), within the scan budget."""
        match = _glob_escape(self._prefix) + "*"
        scan = _Scan()
        node: object = client  # typed as one node's client; a cluster's is another class
        if isinstance(node, RedisCluster):
            return await self._scan_cluster(node, match, scan)
        cursor = 0
        for _ in range(self._scan_limit // _SCAN_BATCH):
            cursor, batch = await client.scan(cursor, match=match, count=_SCAN_BATCH)
            scan.count += len(batch)
            scan.keys.extend(_text(key)[len(self._prefix) :] for key in batch)
            if cursor == 0:
                scan.exact = True
                break
        return scan

    async def _scan_cluster(self, client: RedisCluster, match: str, scan: _Scan) -> _Scan:
        """The same budget over every primary of a cluster, one after the other (a single
        cursor walks one node: the cluster's ``scan_iter`` carries one per primary)."""
        async for key in client.scan_iter(match=match, count=_SCAN_BATCH):
            if scan.count >= self._scan_limit:
                return scan
            scan.count += 1
            scan.keys.append(_text(key)[len(self._prefix) :])
        scan.exact = True
        return scan

    def _details(self, scan: _Scan) -> dict[str, MetricValue]:
        info = scan.info
        details: dict[str, MetricValue] = {
            "redis_version": info.get("redis_version"),
            "keys_exact": scan.exact,
            "server_keyspace_hits": info.get("keyspace_hits"),
            "server_keyspace_misses": info.get("keyspace_misses"),
            "server_evicted_keys": info.get("evicted_keys"),
            "server_expired_keys": info.get("expired_keys"),
            "used_memory_peak_bytes": info.get("used_memory_peak"),
            "maxmemory_bytes": info.get("maxmemory"),
            "key_prefix": self._prefix,
        }
        details.update(count_key_patterns(scan.keys))
        details.update(count_ttl_buckets(ttl for _, ttl in scan.ttls))
        details["ttl_sampled_keys"] = min(len(scan.keys), _TTL_SAMPLE)
        details.update(self._connection.stats.warming.figures(self._connection.stats.hits))
        return details


def _memory_sample(keys: list[str]) -> list[str]:
    """The first ``_MEMORY_SAMPLE`` scanned keys of each class (SCAN's order is the hash
    table's, so the first are as good a sample as any)."""
    taken: dict[str, list[str]] = {name: [] for name in KEY_CLASSES}
    for key in keys:
        found = taken[key_class(key)]
        if len(found) < _MEMORY_SAMPLE:
            found.append(key)
    return [key for found in taken.values() for key in found]


async def _ping(client: redis.Redis) -> None:
    await client.ping()
