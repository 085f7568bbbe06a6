"""A Redis Cluster master dies and comes back: the adapters degrade as on a Redis outage
(ADR 0002: misses, no-ops, an untrusted registry; never an error) and recover after."""

import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from domain.timeline import LogChunk
from infrastructure.redis.cache import RedisCache
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.log_tail import RedisLogTail
from infrastructure.redis.running_registry import RedisRunningRegistry
from tests.redis_cluster import cluster_prefix, redis_cluster_nodes

pytestmark = [pytest.mark.anyio, pytest.mark.redis_cluster]

KEYS = [f"eval:{{e{i}}}" for i in range(30)]  # spread over every master's slots


def running(evaluation_id: str) -> RunningInfo:
    return RunningInfo(
        evaluation_id=EvaluationId(evaluation_id),
        status=EvaluationStatus.RUNNING,
        executor_id="x",
        container_id="c",
        started_at=datetime(2024, 7, 1, tzinfo=UTC),
    )


async def test_a_killed_master_costs_misses_not_errors_and_recovers(
    tmp_path: Path, anyio_backend: str
) -> None:
    with redis_cluster_nodes(tmp_path) as nodes:
        prefix = cluster_prefix()
        connection = RedisConnection(nodes.url, timeout_s=0.5, cooldown_s=0.5, cluster=True)
        cache = RedisCache(connection, ttl_seconds=600, prefix=prefix)
        registry = RedisRunningRegistry(connection, prefix=prefix)
        tail = RedisLogTail(connection, max_bytes=1024, ttl_seconds=600, prefix=prefix)
        try:
            for key in KEYS:
                await cache.put_if_newer(key, 2, b"old")
            await registry.rebuild(DEFAULT_TENANT, _loads([running("e1")]))
            assert await registry.list(DEFAULT_TENANT) == [running("e1")]
            chunk = LogChunk(
                evaluation_id=EvaluationId("e1"), offset=0, content="a\n", created_at=_now()
            )
            await tail.append(DEFAULT_TENANT, chunk)

            nodes.kill(nodes.ports[1])
            started = time.monotonic()
            for key in KEYS:
                # A write during the outage: the old entry must never be served again.
                await cache.put_if_newer(key, 4, b"new")
                assert await cache.get(key) in (None, b"new")
            await registry.track(DEFAULT_TENANT, running("e2"))
            assert await registry.list(DEFAULT_TENANT) in (None, [running("e1"), running("e2")])
            await tail.read(
                DEFAULT_TENANT, EvaluationId("e1"), 0
            )  # a miss or the old tail; never raises
            await tail.append(
                DEFAULT_TENANT,
                LogChunk(
                    evaluation_id=EvaluationId("e1"), offset=2, content="b\n", created_at=_now()
                ),
            )
            # Each call fails fast once the breaker is open: the whole outage costs seconds.
            assert time.monotonic() - started < 20

            nodes.start(nodes.ports[1])  # restarted with its nodes.conf: it takes its slots back
            nodes.wait_healthy()
            await anyio.sleep(0.6)  # past the breaker's cool-down
            with anyio.fail_after(20):
                while True:
                    await cache.put_if_newer("eval:{probe}", 2, b"p")
                    if await cache.get("eval:{probe}") == b"p":
                        break
                    await anyio.sleep(0.2)
            for key in KEYS:
                assert await cache.get(key) != b"old", key  # fenced or refilled, never stale
                await cache.put_if_newer(key, 6, b"fresh")
            # The fence lives 10 s; entries of keys not written during the outage are back.
            assert await cache.get("eval:{probe}") == b"p"
            # The registry was written during the outage: untrusted until rebuilt.
            assert await registry.list(DEFAULT_TENANT) is None
            await registry.rebuild(DEFAULT_TENANT, _loads([running("e1"), running("e2")]))
            assert await registry.list(DEFAULT_TENANT) == [running("e1"), running("e2")]
            # The tail that missed an append is not trusted; a new one works.
            await tail.drop(DEFAULT_TENANT, EvaluationId("e1"))
            await tail.append(DEFAULT_TENANT, chunk)
            assert await tail.read(DEFAULT_TENANT, EvaluationId("e1"), 0) is not None
        finally:
            await connection.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _loads(infos: list[RunningInfo]):  # type: ignore[no-untyped-def]
    async def load() -> list[RunningInfo]:
        return infos

    return load
