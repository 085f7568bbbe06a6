"""Measures the Redis cache: reachability, our keys, memory and hit rate.

Keys are counted with a bounded ``SCAN`` over our prefix (never ``KEYS``): an
inspection examines at most about ``scan_limit`` keys of a large shared server,
and ``keys_exact`` in the details says whether the count is complete. The scan (with
``INFO`` and the TTLs of a sample of the keys) is a ``KeptMeasurement``: redone on
every inspection while it is quick, else kept and redone in the background
(``measured_at``); a ``PING`` each time says whether Redis answers now. Hits and
misses are this process's own, always current. While the connection's circuit is
open the report comes back at once as unavailable.
"""

from typing import Any

import redis.asyncio as redis

from application.backends import Backend
from application.ports.backend_inspector import BackendInspector
from application.ports.health_probe import HealthProbe
from application.queries import (
    KEY_SAMPLE,
    BackendReport,
    MetricValue,
    count_key_patterns,
    count_ttl_buckets,
)
from infrastructure.measurement import KeptMeasurement
from infrastructure.redis.connection import RedisConnection, RedisUnavailableError

_SCAN_BATCH = 1_000
_TTL_SAMPLE = 1_000


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
        self.ttls: list[int] = []


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
        if detailed:
            details = self._details(scan)
            listings["keys"] = sorted(scan.keys)[:KEY_SAMPLE]
        return BackendReport(
            name=self.name,
            type="redis",
            status="healthy",
            metrics=metrics,
            details=details,
            listings=listings,
        )

    async def _measure(self) -> _Scan:
        """``INFO``, our keys within the scan budget, and the TTLs of a sample of them."""

        async def scan_keys(client: redis.Redis) -> _Scan:
            scan = await self._scan(client)
            scan.info = await client.info()
            return scan

        scan = await self._connection.execute(scan_keys)
        sample = scan.keys[:_TTL_SAMPLE]

        async def ttls(client: redis.Redis) -> list[int]:
            pipe = client.pipeline(transaction=False)
            for key in sample:
                pipe.ttl(self._prefix + key)
            result: list[int] = await pipe.execute()
            return result

        scan.ttls = [ttl for ttl in await self._connection.execute(ttls) if ttl != -2]  # -2: gone
        return scan

    async def _scan(self, client: redis.Redis) -> _Scan:
        """Our keys (the prefix left out), within the scan budget."""
        match = _glob_escape(self._prefix) + "*"
        scan = _Scan()
        cursor = 0
        for _ in range(self._scan_limit // _SCAN_BATCH):
            cursor, batch = await client.scan(cursor, match=match, count=_SCAN_BATCH)
            scan.count += len(batch)
            scan.keys.extend(_text(key)[len(self._prefix) :] for key in batch)
            if cursor == 0:
                scan.exact = True
                break
        return scan

    def _details(self, scan: _Scan) -> dict[str, MetricValue]:
        info = scan.info
        details: dict[str, MetricValue] = {
            "redis_version": info.get("redis_version"),
            "keys_exact": scan.exact,
            "server_keyspace_hits": info.get("keyspace_hits"),
            "server_keyspace_misses": info.get("keyspace_misses"),
            "server_evicted_keys": info.get("evicted_keys"),
            "used_memory_peak_bytes": info.get("used_memory_peak"),
            "maxmemory_bytes": info.get("maxmemory"),
            "key_prefix": self._prefix,
        }
        details.update(count_key_patterns(scan.keys))
        details.update(count_ttl_buckets(scan.ttls))
        details["ttl_sampled_keys"] = min(len(scan.keys), _TTL_SAMPLE)
        return details


async def _ping(client: redis.Redis) -> None:
    await client.ping()
