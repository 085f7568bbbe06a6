"""Redis dies, hangs and comes back: the adapters bypass it fast and recover by themselves.

Each test runs its own ``redis-server`` on a free port (never the shared one),
so it can be killed or frozen without disturbing anything else.
"""

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
import redis.asyncio as redis

from application.ports.running_registry import LoadActive
from application.queries import RunningInfo
from application.use_cases.running_evaluations import (
    ListRunningEvaluations,
    RebuildRunningRegistry,
)
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId, parse_evaluation_id
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from infrastructure.memory.evaluations import (
    MemoryDatabase,
    MemoryEvaluationQueries,
    MemoryEvaluationRepository,
)
from infrastructure.redis.cache import FENCE_VERSION, RedisCache
from infrastructure.redis.connection import RedisConnection, RedisUnavailableError
from infrastructure.redis.inspector import RedisInspector
from infrastructure.redis.running_registry import RedisRunningRegistry
from tests.factories import EvaluationFactory
from tests.integration.redis_process import RedisProcess, private_redis_server

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

KEY = "eval:{eval_1}"
RUNNING = RunningInfo(evaluation_id=EvaluationId("eval_1"), status=EvaluationStatus.RUNNING)
CONNECTION_LOGGER = "infrastructure.redis.connection"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    with private_redis_server(tmp_path) as process:
        yield process


Connect = Callable[..., RedisConnection]


@pytest.fixture
async def connect(server: RedisProcess) -> AsyncIterator[Connect]:
    """Opens connections to the private server (one a process), all closed at the end."""
    opened: list[RedisConnection] = []

    def open_connection(**options: Any) -> RedisConnection:
        opened.append(RedisConnection(server.url, **options))
        return opened[-1]

    yield open_connection
    for connection in opened:
        await connection.close()


async def until_working(cache: RedisCache, *, within: float) -> float:
    """Seconds until a write and a read go through again (on a key no failure touched)."""
    started = time.monotonic()
    attempt = 0
    while time.monotonic() - started < within:
        attempt += 1
        probe = f"eval:{{probe_{attempt}}}"
        await cache.put_if_newer(probe, 1, b"back")
        if await cache.get(probe) == b"back":
            return time.monotonic() - started
        await anyio.sleep(0.05)
    raise AssertionError(f"Redis adapters did not recover within {within}s")


def loads(infos: list[RunningInfo]) -> LoadActive:
    async def load() -> list[RunningInfo]:
        return infos

    return load


def stored(name: str, status: EvaluationStatus = EvaluationStatus.RUNNING) -> Evaluation:
    return EvaluationFactory.build(id=parse_evaluation_id(name), status=status)


async def memory_database(
    *evaluations: Evaluation,
) -> tuple[MemoryEvaluationRepository, MemoryEvaluationQueries]:
    """The database the registry is rebuilt from, holding ``evaluations``."""
    database = MemoryDatabase()
    repository = MemoryEvaluationRepository(database, DEFAULT_TENANT)
    for evaluation in evaluations:
        await repository.add(evaluation)
    return repository, MemoryEvaluationQueries(database, DEFAULT_TENANT)


async def open_breaker(server: RedisProcess, connection: RedisConnection) -> None:
    """Freeze Redis, its data kept, until one harmless read times out and opens the breaker.

    Writes made from then on fail fast and are never sent (a write that timed
    out could still be executed by the server once it is thawed).
    """
    server.freeze()
    with pytest.raises(RedisUnavailableError):
        await connection.execute(lambda client: client.ping())
    assert connection.is_open


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == CONNECTION_LOGGER
        and record.levelno == logging.WARNING
        and "unavailable" in record.getMessage()
    ]


async def test_killed_redis_is_bypassed_then_used_again_after_restart(
    server: RedisProcess, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=CONNECTION_LOGGER)
    timeout_s = 0.5
    connection = connect(timeout_s=timeout_s, cooldown_s=0.3)
    cache = RedisCache(connection, ttl_seconds=60, prefix="t:")
    registry = RedisRunningRegistry(connection, prefix="t:")
    inspector = RedisInspector(connection, prefix="t:")
    await cache.put_if_newer(KEY, 1, b"v1")
    assert await cache.get(KEY) == b"v1"
    await registry.rebuild(DEFAULT_TENANT, loads([]))
    await registry.track(DEFAULT_TENANT, RUNNING)
    assert await registry.list(DEFAULT_TENANT) == [RUNNING]
    assert (await inspector.inspect()).status == "healthy"

    server.kill()

    calls = 50
    started = time.monotonic()
    for version in range(2, calls + 2):
        assert await cache.get(KEY) is None
        await cache.put_if_newer(KEY, version, b"lost")
        await cache.delete(KEY)
        assert await registry.list(DEFAULT_TENANT) is None
        assert await registry.get(DEFAULT_TENANT, RUNNING.evaluation_id) is None
        await registry.track(DEFAULT_TENANT, RUNNING)
        await registry.untrack(DEFAULT_TENANT, RUNNING.evaluation_id)
        assert await registry.rebuild(DEFAULT_TENANT, loads([RUNNING])) == [RUNNING]
    elapsed = time.monotonic() - started
    assert elapsed < calls * timeout_s / 5, f"{calls} rounds took {elapsed:.2f}s"

    report = await inspector.inspect(detailed=True)
    assert report.status == "unavailable"
    assert report.error
    assert len(outage_warnings(caplog)) == 1, "an outage is logged once, not per call"

    server.start()
    await until_working(cache, within=10)
    assert cache.unsynced == 0  # the writes lost in the outage were fenced on the new server
    assert await cache.get(KEY) is None
    assert (
        await registry.list(DEFAULT_TENANT) is None
    )  # a fresh server: nothing to trust until a rebuild
    await registry.rebuild(DEFAULT_TENANT, loads([RUNNING]))
    assert await registry.list(DEFAULT_TENANT) == [RUNNING]
    assert (await inspector.inspect()).status == "healthy"
    assert len(outage_warnings(caplog)) == 1


async def test_hung_redis_costs_one_timeout_per_cooldown(
    server: RedisProcess, connect: Connect
) -> None:
    timeout_s = 0.3
    connection = connect(timeout_s=timeout_s, cooldown_s=2.0)
    cache = RedisCache(connection, ttl_seconds=60, prefix="t:")
    registry = RedisRunningRegistry(connection, prefix="t:")
    await cache.put_if_newer(KEY, 1, b"v1")
    assert await cache.get(KEY) == b"v1"

    server.freeze()  # connections are accepted by the kernel but never answered

    calls = 50
    started = time.monotonic()
    for _ in range(calls):
        assert await cache.get(KEY) is None
        assert await registry.list(DEFAULT_TENANT) is None
    elapsed = time.monotonic() - started
    # Without the breaker this would be 2 * calls * timeout_s (30 s).
    assert elapsed < 4 * timeout_s, f"{2 * calls} calls took {elapsed:.2f}s"
    assert connection.is_open

    server.thaw()
    recovered = await until_working(cache, within=10)
    assert recovered < 2.0 + 1.0
    assert not connection.is_open


COOLDOWN_S = 0.3


@pytest.fixture
async def raw(server: RedisProcess) -> AsyncIterator[redis.Redis]:
    """A client of the private server that sees what the adapters left in it."""
    client = redis.Redis.from_url(server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_cache_writes_skipped_while_redis_kept_its_data_never_serve_the_old_record(
    server: RedisProcess, connect: Connect, raw: redis.Redis
) -> None:
    connection = connect(timeout_s=0.3, cooldown_s=COOLDOWN_S)
    cache = RedisCache(connection, ttl_seconds=3600, prefix="t:", fence_ttl_seconds=1)
    other_connection = connect(timeout_s=2.0)
    other = RedisCache(other_connection, ttl_seconds=3600, prefix="t:")  # another process
    await cache.put_if_newer(KEY, 2, b"v1")  # record version 1, cached
    assert await other.get(KEY) == b"v1"

    await open_breaker(server, connection)
    # A writer commits version 2: its tombstone and its publish cannot be sent.
    await cache.put_if_newer(KEY, 3, None)
    await cache.put_if_newer(KEY, 4, b"v2")
    assert cache.unsynced == 1
    assert await cache.get(KEY) is None
    server.thaw()
    assert await raw.hget(f"t:{KEY}", "d") == b"v1"  # Redis still holds the old record

    await anyio.sleep(COOLDOWN_S + 0.05)
    assert await cache.get(KEY) is None  # the repair fenced it first
    assert cache.unsynced == 0
    assert await raw.hget(f"t:{KEY}", "v") == str(FENCE_VERSION).encode()
    assert 0 < await raw.pttl(f"t:{KEY}") <= 1000
    assert await other.get(KEY) is None  # for every process

    # A reader that loaded version 1 before the change fills it late: refused,
    # and so is any fill while the fence lives.
    await other.put_if_newer(KEY, 2, b"v1")
    await cache.put_if_newer(KEY, 4, b"v2")
    assert await other.get(KEY) is None

    await anyio.sleep(1.1)  # the fence expires
    assert await cache.get(KEY) is None
    await cache.put_if_newer(KEY, 4, b"v2")  # the fill after that miss
    assert await cache.get(KEY) == b"v2"
    assert await other.get(KEY) == b"v2"


async def test_too_many_unsynced_keys_flush_every_cache_entry_and_nothing_else(
    server: RedisProcess, connect: Connect, raw: redis.Redis
) -> None:
    connection = connect(timeout_s=0.3, cooldown_s=COOLDOWN_S)
    cache = RedisCache(connection, ttl_seconds=3600, prefix="t:", max_unsynced=2)
    registry = RedisRunningRegistry(connection, prefix="t:")
    for name in ("a", "b", "c", "d"):
        await cache.put_if_newer(f"eval:{{{name}}}", 2, b"v1")
    await registry.rebuild(DEFAULT_TENANT, loads([RUNNING]))
    kept = [
        b"t:eval:eval_1:running",
        b"t:running_evaluations",
        b"t:running_evaluations:state",
        b"t:logs:{a}",
        b"other:eval:{a}",  # another deployment's prefix
        b"eval:{a}",
    ]
    for key in kept[3:]:
        await raw.set(key, b"x")

    await open_breaker(server, connection)
    for name in ("a", "b", "c"):
        await cache.put_if_newer(f"eval:{{{name}}}", 4, b"v2")
    assert (cache.flush_pending, cache.unsynced) == (True, 0)
    server.thaw()
    await anyio.sleep(COOLDOWN_S + 0.05)

    assert await cache.get("eval:{d}") is None  # never unsynced, but flushed as well
    assert not cache.flush_pending
    assert sorted(await raw.keys("*")) == sorted(kept)
    assert await registry.list(DEFAULT_TENANT) == [RUNNING]
    await cache.put_if_newer("eval:{a}", 4, b"v2")
    assert await cache.get("eval:{a}") == b"v2"


async def test_registry_lost_by_redis_is_answered_from_the_database_and_rebuilt(
    server: RedisProcess, connect: Connect, raw: redis.Redis
) -> None:
    connection = connect(timeout_s=0.5, cooldown_s=COOLDOWN_S)
    registry = RedisRunningRegistry(connection, prefix="t:")
    active = [stored("run-1"), stored("prov-1", EvaluationStatus.PROVISIONING)]
    _, queries = await memory_database(*active, stored("done-1", EvaluationStatus.COMPLETED))
    expected = sorted((RunningInfo.of(e) for e in active), key=lambda i: i.evaluation_id)
    list_running = ListRunningEvaluations(registry, queries, DEFAULT_TENANT)
    assert await RebuildRunningRegistry(registry, queries, DEFAULT_TENANT).execute() == 2
    assert await list_running.execute() == expected

    await raw.flushall()  # a restart without persistence loses the same

    assert await list_running.execute() == expected  # from the database
    assert sorted(await raw.smembers("t:running_evaluations")) == [b"prov-1", b"run-1"]
    assert json.loads(await raw.get("t:eval:run-1:running") or b"{}")["status"] == "running"
    assert await raw.hexists("t:running_evaluations:state", "built")
    assert await registry.list(DEFAULT_TENANT) == expected


async def test_registry_write_skipped_while_redis_kept_its_data_is_not_trusted(
    server: RedisProcess, connect: Connect, raw: redis.Redis
) -> None:
    connection = connect(timeout_s=0.3, cooldown_s=COOLDOWN_S)
    registry = RedisRunningRegistry(connection, prefix="t:")
    other_connection = connect(timeout_s=2.0)
    other = RedisRunningRegistry(other_connection, prefix="t:")  # another process
    finishing, staying = stored("fin-1"), stored("stay-1")
    repository, queries = await memory_database(finishing, staying)
    await RebuildRunningRegistry(registry, queries, DEFAULT_TENANT).execute()
    assert len(await other.list(DEFAULT_TENANT) or []) == 2

    await open_breaker(server, connection)
    finished = msgspec.structs.replace(
        finishing, status=EvaluationStatus.COMPLETED, version=finishing.version + 1
    )
    await repository.update(finished, finishing.version)
    await registry.untrack(
        DEFAULT_TENANT, finished.id
    )  # what the publisher does after that commit: lost
    server.thaw()
    assert await raw.sismember("t:running_evaluations", "fin-1")  # Redis kept the entry

    await anyio.sleep(COOLDOWN_S + 0.05)
    assert await registry.list(DEFAULT_TENANT) is None  # this process knows its write failed...
    assert await other.list(DEFAULT_TENANT) is None  # ...and has told every other one
    assert await ListRunningEvaluations(other, queries, DEFAULT_TENANT).execute() == [
        RunningInfo.of(staying)
    ]
    assert not await raw.sismember("t:running_evaluations", "fin-1")
    assert await registry.list(DEFAULT_TENANT) == [RunningInfo.of(staying)]
