"""The versioned Cache contract, held against the in-process and the Redis adapter."""

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import pytest

from application.ports.cache import Cache
from application.services.record_cache import RecordCache, record_key
from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.crypto.cache import SealedCache
from infrastructure.memory.cache import MemoryCache, MemoryCacheInspector
from infrastructure.redis.cache import RedisCache
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.inspector import RedisInspector
from tests.factories import EvaluationFactory
from tests.keys import fresh_keyring
from tests.redis_cluster import ADAPTER_PARAMS, drop_keys, redis_target
from tests.services import TEST_REDIS_URL, drop_redis_keys, redis_test_prefix

pytestmark = pytest.mark.anyio

KEY = "eval:{eval_1}"
TTL = 1


@dataclass
class Harness:
    cache: Cache
    expire: Callable[[], Awaitable[None]]
    counters: Callable[[], tuple[int, int]]


@pytest.fixture(params=[*ADAPTER_PARAMS, pytest.param("sealed-redis", marks=pytest.mark.redis)])
async def harness(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Harness]:
    if request.param == "memory":
        now = [1000.0]

        async def advance() -> None:
            now[0] += TTL + 0.001

        memory = MemoryCache(ttl_seconds=TTL, clock=lambda: now[0])
        yield Harness(memory, advance, lambda: (memory.hits, memory.misses))
        return
    url, cluster, prefix = redis_target(request)
    connection = RedisConnection(url, timeout_s=2.0, cluster=cluster)
    cache = RedisCache(connection, ttl_seconds=TTL, prefix=prefix)

    async def wait() -> None:
        await anyio.sleep(TTL + 0.15)

    outer: Cache = cache
    if request.param == "sealed-redis":  # ENCRYPTION=on: entries sealed, versions as they are
        outer = SealedCache(cache, fresh_keyring())
    try:
        yield Harness(outer, wait, lambda: (cache.hits, cache.misses))
    finally:
        await drop_keys(prefix, url, cluster)
        await connection.close()


async def test_miss_then_hit(harness: Harness) -> None:
    cache = harness.cache
    assert await cache.get(KEY) is None
    await cache.put_if_newer(KEY, 1, b"v1")
    assert await cache.get(KEY) == b"v1"
    assert await cache.get("eval:{other}") is None
    assert harness.counters() == (1, 2)


async def test_binary_and_empty_values(harness: Harness) -> None:
    cache = harness.cache
    blob = bytes(range(256)) * 40
    await cache.put_if_newer(KEY, 1, blob)
    assert await cache.get(KEY) == blob
    await cache.put_if_newer("eval:{empty}", 1, b"")
    assert await cache.get("eval:{empty}") == b""


async def test_newer_replaces_older_never_the_reverse(harness: Harness) -> None:
    cache = harness.cache
    await cache.put_if_newer(KEY, 4, b"v4")
    await cache.put_if_newer(KEY, 3, b"v3")
    assert await cache.get(KEY) == b"v4"
    await cache.put_if_newer(KEY, 4, b"v4-again")
    assert await cache.get(KEY) == b"v4"
    await cache.put_if_newer(KEY, 6, b"v6")
    assert await cache.get(KEY) == b"v6"


async def test_tombstone_blocks_stale_refill_and_yields_to_newer(harness: Harness) -> None:
    cache = harness.cache
    await cache.put_if_newer(KEY, 2, b"v1")  # record version 1 cached as 2
    await cache.put_if_newer(KEY, 3, None)  # tombstone before committing version 2
    assert await cache.get(KEY) is None
    await cache.put_if_newer(KEY, 2, b"v1")  # a reader re-filling what it read earlier
    assert await cache.get(KEY) is None
    await cache.put_if_newer(KEY, 4, b"v2")  # the writer publishes version 2
    assert await cache.get(KEY) == b"v2"
    await cache.put_if_newer(KEY, 5, None)  # a delete leaves a tombstone
    await cache.put_if_newer(KEY, 4, b"v2")
    assert await cache.get(KEY) is None


async def test_delete_removes_entry(harness: Harness) -> None:
    cache = harness.cache
    await cache.put_if_newer(KEY, 7, b"v7")
    await cache.delete(KEY)
    await cache.delete(KEY)
    assert await cache.get(KEY) is None
    await cache.put_if_newer(KEY, 1, b"v1")
    assert await cache.get(KEY) == b"v1"


async def test_entries_expire_after_ttl(harness: Harness) -> None:
    cache = harness.cache
    await cache.put_if_newer(KEY, 9, b"v9")
    await cache.put_if_newer("eval:{gone}", 9, None)
    await harness.expire()
    assert await cache.get(KEY) is None
    # An expired entry, tombstone or not, no longer guards its version.
    await cache.put_if_newer(KEY, 1, b"v1")
    await cache.put_if_newer("eval:{gone}", 1, b"back")
    assert await cache.get(KEY) == b"v1"
    assert await cache.get("eval:{gone}") == b"back"


async def test_racing_stale_refills_never_win_over_the_newest(harness: Harness) -> None:
    """Readers re-fill versions they read a moment ago while a writer keeps moving on."""
    cache = harness.cache
    versions = 60
    current = {"version": 1}
    done = anyio.Event()
    rng = random.Random(7)

    async def writer() -> None:
        for version in range(2, versions + 1):
            await cache.put_if_newer(KEY, 2 * version - 1, None)
            current["version"] = version
            await anyio.lowlevel.checkpoint()
            await cache.put_if_newer(KEY, 2 * version, f"v{version}".encode())
        done.set()

    async def reader() -> None:
        while not done.is_set():
            seen = current["version"]
            for _ in range(rng.randint(0, 3)):
                await anyio.lowlevel.checkpoint()
            await cache.put_if_newer(KEY, 2 * seen, f"v{seen}".encode())
            await cache.get(KEY)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(reader)
        group.start_soon(writer)
    assert await cache.get(KEY) == f"v{versions}".encode()


async def test_memory_cache_is_bounded_lru() -> None:
    cache = MemoryCache(ttl_seconds=60, max_entries=3)
    for index in range(3):
        await cache.put_if_newer(f"k{index}", 1, b"x")
    assert await cache.get("k0") == b"x"  # k0 becomes most recently used
    await cache.put_if_newer("k3", 1, b"x")
    assert await cache.get("k1") is None
    assert await cache.get("k0") == b"x"
    report = await MemoryCacheInspector(cache).inspect(detailed=True)
    assert report.name == "cache"
    assert report.type == "memory"
    assert report.status == "healthy"
    assert report.metrics == {
        "entries": 3,
        "hits": 2,
        "misses": 1,
        "hit_rate": 0.6667,
        "evictions": 1,  # k1, least recently used
    }
    assert report.details["max_entries"] == 3
    assert report.listings["keys"] == ["k0", "k2", "k3"]


async def test_memory_inspector_reports_keys_ttls_and_memory_like_redis() -> None:
    now = [1000.0]
    cache = MemoryCache(ttl_seconds=600, clock=lambda: now[0])
    await cache.put_if_newer("eval:{a}", 2, b"abc")
    await cache.put_if_newer("eval:{b}", 1, None)
    now[0] += 550
    await cache.put_if_newer("other", 1, b"x")
    report = await MemoryCacheInspector(cache).inspect(detailed=True)
    details = report.details
    assert (details["keys_eval"], details["keys_other"], details["keys_logs"]) == (2, 1, 0)
    assert details["ttl_up_to_1m"] == 2
    assert details["ttl_1m_to_10m"] == 1
    assert details["ttl_none"] == details["ttl_over_1h"] == 0
    assert details["used_memory_bytes"] == len("eval:{a}") + 3 + len("eval:{b}") + len("other") + 1


@pytest.mark.redis
async def test_redis_inspector_reports_keys_and_hit_rate(anyio_backend: str) -> None:
    prefix = redis_test_prefix()
    connection = RedisConnection(TEST_REDIS_URL, timeout_s=2.0)
    try:
        cache = RedisCache(connection, ttl_seconds=3600, prefix=prefix)
        await cache.put_if_newer("eval:{a}", 2, b"a")
        await cache.put_if_newer("eval:{b}", 2, None)
        await connection.client.set(f"{prefix}logs:{{a}}", b"log")
        await cache.get("eval:{a}")
        await cache.get("eval:{b}")
        report = await RedisInspector(connection, prefix=prefix).inspect(detailed=True)
        assert report.name == "cache"
        assert report.type == "redis"
        assert report.status == "healthy"
        assert report.metrics["keys"] == 3
        assert report.metrics["hits"] == 1
        assert report.metrics["misses"] == 1
        assert report.metrics["hit_rate"] == 0.5
        # object: mypy sees no int in a float MetricValue
        used: object = report.metrics["used_memory_bytes"]
        assert isinstance(used, int)
        assert used > 0
        assert report.details["keys_eval"] == 2
        assert report.details["keys_logs"] == 1
        assert report.details["ttl_10m_to_1h"] == 2
        assert report.details["ttl_none"] == 1
        assert str(report.details["redis_version"]).split(".")[0].isdigit()
        assert report.listings["keys"] == ["eval:{a}", "eval:{b}", "logs:{a}"]
        assert isinstance(report.details["used_memory_peak_bytes"], int)
    finally:
        await drop_redis_keys(prefix)
        await connection.close()


async def test_clear_deletes_every_entry_and_tombstone(harness: Harness) -> None:
    cache = harness.cache
    await cache.put_if_newer(KEY, 2, b"v1")
    await cache.put_if_newer("eval:{eval_2}", 3, None)
    assert await cache.clear() == 2
    assert await cache.get(KEY) is None
    await cache.put_if_newer(KEY, 1, b"older")  # no tombstone left to refuse it
    assert await cache.get(KEY) == b"older"
    assert await cache.clear() == 1


async def test_the_record_cache_keeps_the_same_id_apart_in_two_tenants(harness: Harness) -> None:
    """ADR 0032: entries are keyed by the qualified id; the default tenant's key is the one
    it had before tenants."""
    records = RecordCache(harness.cache)
    acme = TenantId("acme")
    ours = EvaluationFactory.build(id=EvaluationId("eval_1"), version=1, deleted_at=None)
    theirs = EvaluationFactory.build(id=EvaluationId("eval_1"), version=1, deleted_at=None)
    await records.fill(DEFAULT_TENANT, ours)
    await records.fill(acme, theirs)

    assert record_key(DEFAULT_TENANT, ours.id) == "eval:{eval_1}"
    assert record_key(acme, ours.id) == "eval:{acme/eval_1}"
    assert await records.get(DEFAULT_TENANT, ours.id) == ours
    assert await records.get(acme, ours.id) == theirs
    assert await records.get(TenantId("other"), ours.id) is None

    await records.forget(acme, ours.id)
    assert await records.get(acme, ours.id) is None
    assert await records.get(DEFAULT_TENANT, ours.id) == ours
