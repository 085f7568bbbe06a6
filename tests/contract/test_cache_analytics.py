"""Cache analytics held against the in-process adapters and Redis (single and Cluster):
lookups counted by key class where each adapter reads, the per-class keys, TTLs and
memory of a detailed report, warming's marked entries, and the in-process removals."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from application.ports.backend_inspector import BackendInspector
from application.ports.cache import Cache
from application.ports.log_tail import LogTail
from application.ports.running_registry import RunningRegistry
from application.queries import KEY_CLASSES, TTL_BUCKET_NAMES, RunningInfo
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from domain.timeline import LogChunk
from infrastructure.memory.cache import MemoryCache, MemoryCacheInspector
from infrastructure.memory.log_tail import MemoryLogTail
from infrastructure.memory.running_registry import MemoryRunningRegistry
from infrastructure.redis import inspector as redis_inspector
from infrastructure.redis.cache import RedisCache
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.inspector import RedisInspector
from infrastructure.redis.log_tail import RedisLogTail
from infrastructure.redis.running_registry import RedisRunningRegistry
from tests.redis_cluster import ADAPTER_PARAMS, REDIS_PARAMS, drop_keys, redis_target

pytestmark = pytest.mark.anyio

# Every report is held against single Redis and Redis Cluster (whose SCAN the inspector
# walks primary by primary).

TTL = 3600
A, B = EvaluationId("ca-a"), EvaluationId("ca-b")


@dataclass
class Harness:
    cache: Cache
    registry: RunningRegistry
    tail: LogTail
    inspector: BackendInspector
    redis: bool


async def _harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        cache, registry, tail = MemoryCache(TTL), MemoryRunningRegistry(), MemoryLogTail(1024)
        yield Harness(cache, registry, tail, MemoryCacheInspector(cache, registry, tail), False)
        return
    url, cluster, prefix = redis_target(request)
    connection = RedisConnection(url, timeout_s=2.0, cluster=cluster)
    try:
        yield Harness(
            RedisCache(connection, ttl_seconds=TTL, prefix=prefix),
            RedisRunningRegistry(connection, prefix=prefix),
            RedisLogTail(connection, max_bytes=1024, ttl_seconds=TTL, prefix=prefix),
            RedisInspector(connection, prefix=prefix),
            True,
        )
    finally:
        await drop_keys(prefix, url, cluster)
        await connection.close()


@pytest.fixture(params=["memory", *REDIS_PARAMS])
async def harness(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Harness]:
    async for built in _harness(request):
        yield built


@pytest.fixture(params=ADAPTER_PARAMS)
async def any_harness(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Harness]:
    async for built in _harness(request):
        yield built


@pytest.fixture(params=REDIS_PARAMS)
async def redis_harness(
    request: pytest.FixtureRequest, anyio_backend: str
) -> AsyncIterator[Harness]:
    async for built in _harness(request):
        yield built


def _running(evaluation_id: EvaluationId) -> RunningInfo:
    return RunningInfo(evaluation_id=evaluation_id, status=EvaluationStatus.RUNNING)


def _chunk(evaluation_id: EvaluationId, content: str) -> LogChunk:
    return LogChunk(
        evaluation_id=evaluation_id, offset=0, content=content, created_at=datetime.now(UTC)
    )


async def _load_nothing() -> list[RunningInfo]:
    return []


async def test_each_read_path_counts_its_own_class(harness: Harness) -> None:
    await harness.cache.put_if_newer("eval:{ca-a}", 2, b"record")
    assert await harness.cache.get("eval:{ca-a}") == b"record"
    assert await harness.cache.get("eval:{ca-b}") is None
    assert await harness.cache.get("eval:{ca-b}") is None
    await harness.registry.rebuild(DEFAULT_TENANT, _load_nothing)  # trusted from here on
    await harness.registry.track(DEFAULT_TENANT, _running(A))
    assert await harness.registry.get(DEFAULT_TENANT, A) is not None
    assert await harness.registry.list(DEFAULT_TENANT) is not None
    assert await harness.registry.get(DEFAULT_TENANT, B) is None
    await harness.tail.append(DEFAULT_TENANT, _chunk(A, "hello\n"))
    assert await harness.tail.read(DEFAULT_TENANT, A, 0) is not None
    assert await harness.tail.read(DEFAULT_TENANT, B, 0) is None
    assert (
        await harness.tail.read(DEFAULT_TENANT, A, 99) is None
    )  # past the tail: the store answers

    classes = (await harness.inspector.inspect(detailed=True)).classes

    counted = {name: (classes[name]["hits"], classes[name]["misses"]) for name in KEY_CLASSES}
    assert counted == {
        "records": (1, 2),
        "running": (2, 1),
        "log_tail": (1, 2),
        "other": (None, None),
    }
    assert classes["records"]["hit_rate"] == 0.3333
    assert classes["running"]["hit_rate"] == 0.6667


async def test_keys_ttls_and_memory_by_class(harness: Harness) -> None:
    for name in ("ca-a", "ca-b"):
        await harness.cache.put_if_newer(f"eval:{{{name}}}", 2, b"x" * 500)
    await harness.registry.track(DEFAULT_TENANT, _running(A))
    await harness.tail.append(DEFAULT_TENANT, _chunk(A, "y" * 300))

    classes = (await harness.inspector.inspect(detailed=True)).classes

    records, running, tails = classes["records"], classes["running"], classes["log_tail"]
    assert records["keys"] == 2
    assert records["memory_sampled"] == 2  # every key of a small cache is measured
    memory = records["memory_bytes"]
    assert isinstance(memory, int | float)
    assert memory >= 2 * 500
    assert records["ttl_10m_to_1h"] == records["ttl_sampled_keys"] == 2
    tail_memory = tails["memory_bytes"]
    assert isinstance(tail_memory, int | float)
    assert tail_memory >= 300
    assert tails["keys"] == 1
    # This service's registry entries have no TTL (only the platform worker's do).
    assert int(running["ttl_none"] or 0) >= 1
    if harness.redis:  # the set and its state are keys of the registry too
        assert running["keys"] == 3
        assert tails["ttl_10m_to_1h"] == 1
    else:  # in process: one entry, and a tail dropped when its evaluation stops
        assert running["keys"] == 1
        assert tails["ttl_none"] == 1
    for figures in classes.values():
        assert sum(int(figures[b] or 0) for b in TTL_BUCKET_NAMES) == figures["ttl_sampled_keys"]
    assert classes["other"]["keys"] == classes["other"]["memory_bytes"] == 0


async def test_hits_of_entries_warming_wrote_are_counted(harness: Harness) -> None:
    await harness.cache.put_if_newer("eval:{ca-a}", 2, b"warm", warm=True)
    await harness.cache.put_if_newer("eval:{ca-b}", 2, b"read", warm=False)
    await harness.cache.put_if_newer("eval:{ca-a}", 2, b"again", warm=True)  # refused
    for _ in range(3):
        await harness.cache.get("eval:{ca-a}")
    await harness.cache.get("eval:{ca-b}")

    details = (await harness.inspector.inspect(detailed=True)).details
    assert (details["warm_fills"], details["warm_hits"], details["warm_hit_share"]) == (1, 3, 0.75)

    await harness.cache.put_if_newer("eval:{ca-a}", 4, b"written")  # a write unmarks it
    await harness.cache.get("eval:{ca-a}")
    details = (await harness.inspector.inspect(detailed=True)).details
    assert (details["warm_fills"], details["warm_hits"], details["warm_hit_share"]) == (1, 3, 0.6)


async def test_lookups_feed_the_prometheus_counters(any_harness: Harness) -> None:
    harness = any_harness

    def count(key_class: str, result: str) -> float:
        labels = {"key_class": key_class, "result": result}
        found = REGISTRY.get_sample_value("crucible_storage_cache_class_lookups_total", labels)
        return found or 0.0

    before = {c: (count(c, "hit"), count(c, "miss")) for c in ("records", "running", "log_tail")}
    await harness.cache.get("eval:{ca-a}")
    await harness.registry.get(DEFAULT_TENANT, A)
    await harness.tail.append(DEFAULT_TENANT, _chunk(A, "z"))
    await harness.tail.read(DEFAULT_TENANT, A, 0)

    assert count("records", "miss") == before["records"][1] + 1
    assert count("running", "miss") == before["running"][1] + 1
    assert count("log_tail", "hit") == before["log_tail"][0] + 1


async def test_memory_is_sampled_and_scaled_on_redis(
    redis_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_inspector, "_MEMORY_SAMPLE", 5)
    for index in range(40):
        await redis_harness.cache.put_if_newer(f"eval:{{ca-{index}}}", 2, b"v" * 200)

    records = (await redis_harness.inspector.inspect(detailed=True)).classes["records"]

    assert (records["keys"], records["memory_sampled"]) == (40, 5)
    memory = records["memory_bytes"]
    assert isinstance(memory, int | float)
    assert 40 * 200 <= memory <= 40 * 1_000  # the sampled mean times 40, overheads included


async def test_redis_reports_the_servers_evictions_and_expirations(
    redis_harness: Harness,
) -> None:
    await redis_harness.cache.put_if_newer("eval:{ca-a}", 2, b"x")

    report = await redis_harness.inspector.inspect(detailed=True)

    for name in ("server_evicted_keys", "server_expired_keys"):
        figure: object = report.details[name]  # object: mypy sees no int in a MetricValue
        assert isinstance(figure, int), name
    # Redis does not count them per key class.
    assert report.classes["records"]["evictions"] is None
    assert report.classes["records"]["expirations"] is None


async def test_the_in_process_cache_counts_its_evictions_and_expirations() -> None:
    now = [1000.0]
    cache = MemoryCache(ttl_seconds=60, clock=lambda: now[0], max_entries=2)
    tail = MemoryLogTail(1024, max_tails=1)
    for index in range(3):
        await cache.put_if_newer(f"eval:{{e{index}}}", 2, b"x")  # the third evicts e0
        await tail.append(DEFAULT_TENANT, _chunk(EvaluationId(f"e{index}"), "l"))
    now[0] += 61  # both left expire
    assert await cache.get("eval:{e2}") is None  # found expired on a read
    inspector = MemoryCacheInspector(cache, MemoryRunningRegistry(), tail)

    report = await inspector.inspect(detailed=True)

    assert (report.classes["records"]["evictions"], report.classes["records"]["expirations"]) == (
        1,
        2,
    )
    assert report.details["expirations"] == 2
    assert report.classes["log_tail"]["evictions"] == 2
    assert report.classes["running"]["evictions"] == report.classes["running"]["expirations"] == 0
