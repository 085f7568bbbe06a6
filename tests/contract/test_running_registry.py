"""The RunningRegistry contract, held against the in-process and the Redis adapter.

What the Redis adapter does on the keys the platform's storage worker shares with it:
tests/contract/test_running_registry_worker_keys.py.
"""

import builtins
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

from application.ports.running_registry import RunningRegistry
from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.memory.running_registry import MemoryRunningRegistry
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.running_registry import RedisRunningRegistry
from tests.contract.running_infos import FULL, info, loads
from tests.redis_cluster import ADAPTER_PARAMS, drop_keys, redis_target
from tests.services import TEST_REDIS_URL, drop_redis_keys, redis_test_prefix

pytestmark = pytest.mark.anyio


@pytest.fixture(params=ADAPTER_PARAMS)
async def registry(
    request: pytest.FixtureRequest, anyio_backend: str
) -> AsyncIterator[RunningRegistry]:
    if request.param == "memory":
        yield MemoryRunningRegistry()
        return
    url, cluster, prefix = redis_target(request)
    connection = RedisConnection(url, timeout_s=2.0, cluster=cluster)
    try:
        redis_registry = RedisRunningRegistry(connection, prefix=prefix)
        assert (
            await redis_registry.list(DEFAULT_TENANT) is None
        )  # never built: nothing to trust yet
        await redis_registry.rebuild(DEFAULT_TENANT, loads([]))  # what the service does at start
        yield redis_registry
    finally:
        await drop_keys(prefix, url, cluster)
        await connection.close()


async def test_track_get_list_untrack(registry: RunningRegistry) -> None:
    assert await registry.list(DEFAULT_TENANT) == []
    assert await registry.get(DEFAULT_TENANT, FULL.evaluation_id) is None
    await registry.track(DEFAULT_TENANT, FULL)
    await registry.track(DEFAULT_TENANT, info("eval_2", EvaluationStatus.PROVISIONING))
    assert await registry.get(DEFAULT_TENANT, FULL.evaluation_id) == FULL
    assert await registry.get(DEFAULT_TENANT, EvaluationId("eval_2")) == info(
        "eval_2", EvaluationStatus.PROVISIONING
    )
    listed = await registry.list(DEFAULT_TENANT)
    assert listed is not None
    assert sorted(listed, key=lambda i: i.evaluation_id) == sorted(
        [FULL, info("eval_2", EvaluationStatus.PROVISIONING)], key=lambda i: i.evaluation_id
    )
    await registry.untrack(DEFAULT_TENANT, FULL.evaluation_id)
    await registry.untrack(DEFAULT_TENANT, FULL.evaluation_id)
    await registry.untrack(DEFAULT_TENANT, EvaluationId("never_tracked"))
    assert await registry.get(DEFAULT_TENANT, FULL.evaluation_id) is None
    assert await registry.list(DEFAULT_TENANT) == [info("eval_2", EvaluationStatus.PROVISIONING)]


async def test_track_again_merges_what_it_knows_and_keeps_the_rest(
    registry: RunningRegistry,
) -> None:
    await registry.track(DEFAULT_TENANT, FULL)
    moved = info(FULL.evaluation_id, EvaluationStatus.PROVISIONING, executor_id="executor-9")
    await registry.track(DEFAULT_TENANT, moved)
    merged = info(
        FULL.evaluation_id,
        EvaluationStatus.PROVISIONING,
        executor_id="executor-9",
        container_id=FULL.container_id,
        started_at=FULL.started_at,
        timeout=FULL.timeout,
    )
    assert await registry.get(DEFAULT_TENANT, FULL.evaluation_id) == merged
    assert await registry.list(DEFAULT_TENANT) == [merged]


async def test_started_at_keeps_its_offset(registry: RunningRegistry) -> None:
    offset = timezone(timedelta(hours=2))
    entry = info("eval_tz", started_at=datetime(2024, 6, 1, 8, 0, tzinfo=offset))
    await registry.track(DEFAULT_TENANT, entry)
    got = await registry.get(DEFAULT_TENANT, entry.evaluation_id)
    assert got == entry
    assert got is not None
    assert got.started_at is not None
    assert got.started_at.utcoffset() == timedelta(hours=2)


async def test_rebuild_replaces_everything(registry: RunningRegistry) -> None:
    await registry.track(DEFAULT_TENANT, FULL)
    await registry.track(DEFAULT_TENANT, info("eval_stale"))
    fresh = [info("eval_a", executor_id="x"), info("eval_b", EvaluationStatus.PROVISIONING)]
    assert await registry.rebuild(DEFAULT_TENANT, loads(fresh)) == fresh
    listed = await registry.list(DEFAULT_TENANT)
    assert listed is not None
    assert sorted(listed, key=lambda i: i.evaluation_id) == fresh
    assert await registry.get(DEFAULT_TENANT, EvaluationId("eval_stale")) is None
    assert await registry.get(DEFAULT_TENANT, FULL.evaluation_id) is None
    assert await registry.rebuild(DEFAULT_TENANT, loads([])) == []
    assert await registry.list(DEFAULT_TENANT) == []


async def test_rebuild_merges_into_the_entries_it_keeps(registry: RunningRegistry) -> None:
    """The database's view wins where it knows; the entry keeps what only it knew."""
    await registry.track(DEFAULT_TENANT, FULL)
    from_database = info(FULL.evaluation_id, EvaluationStatus.RUNNING, container_id="c-2")
    expected = info(
        FULL.evaluation_id,
        executor_id=FULL.executor_id,
        container_id="c-2",
        started_at=FULL.started_at,
        timeout=FULL.timeout,
    )

    assert await registry.rebuild(DEFAULT_TENANT, loads([from_database])) == [expected]
    assert await registry.list(DEFAULT_TENANT) == [expected]


async def test_a_change_tracked_during_a_rebuild_leaves_the_registry_untrusted(
    registry: RunningRegistry,
) -> None:
    """The load read the database before the change: its older view must not be trusted."""
    before_the_change = [info("eval_old")]

    async def load_then_race() -> builtins.list[RunningInfo]:
        await registry.track(
            DEFAULT_TENANT, info("eval_new")
        )  # committed and tracked while loading
        return before_the_change

    assert await registry.rebuild(DEFAULT_TENANT, load_then_race) == before_the_change
    assert await registry.list(DEFAULT_TENANT) is None

    async def load_untrack_race() -> builtins.list[RunningInfo]:
        await registry.untrack(DEFAULT_TENANT, EvaluationId("eval_old"))
        return before_the_change

    await registry.rebuild(DEFAULT_TENANT, load_untrack_race)
    assert await registry.list(DEFAULT_TENANT) is None

    fresh = [info("eval_new")]
    await registry.rebuild(DEFAULT_TENANT, loads(fresh))
    assert await registry.list(DEFAULT_TENANT) == fresh


async def test_ids_with_every_allowed_character(registry: RunningRegistry) -> None:
    entry = info("A-z_0.9:run")
    await registry.track(DEFAULT_TENANT, entry)
    assert await registry.get(DEFAULT_TENANT, entry.evaluation_id) == entry
    assert await registry.list(DEFAULT_TENANT) == [entry]


# The platform worker's keys (Redis and Redis Cluster).


@pytest.mark.redis
async def test_redis_index_lost_or_raced_is_untrusted_by_every_process(anyio_backend: str) -> None:
    prefix = redis_test_prefix()
    first = RedisConnection(TEST_REDIS_URL, timeout_s=2.0)
    second = RedisConnection(TEST_REDIS_URL, timeout_s=2.0)
    try:
        one = RedisRunningRegistry(first, prefix=prefix)
        other = RedisRunningRegistry(second, prefix=prefix)  # another process
        assert await one.list(DEFAULT_TENANT) is None
        await one.rebuild(DEFAULT_TENANT, loads([FULL]))
        assert await other.list(DEFAULT_TENANT) == [FULL]
        state = await first.client.hgetall(f"{prefix}running_evaluations:state")
        assert b"built" in state

        async def race() -> builtins.list[RunningInfo]:
            await other.track(DEFAULT_TENANT, info("eval_other"))
            return [FULL]

        await one.rebuild(DEFAULT_TENANT, race)
        assert await other.list(DEFAULT_TENANT) is None
        assert await one.list(DEFAULT_TENANT) is None

        await other.rebuild(DEFAULT_TENANT, loads([FULL, info("eval_other")]))
        assert await one.list(DEFAULT_TENANT) == [FULL, info("eval_other")]

        # Redis loses everything (FLUSHDB, restart without persistence) but our prefix:
        await drop_redis_keys(prefix)
        assert await one.list(DEFAULT_TENANT) is None
        assert await other.list(DEFAULT_TENANT) is None
    finally:
        await drop_redis_keys(prefix)
        await first.close()
        await second.close()


async def test_the_same_id_in_two_tenants_is_two_entries(registry: RunningRegistry) -> None:
    """ADR 0032: each tenant has an index of its own; the same id never collides."""
    acme = TenantId("acme")
    assert await registry.rebuild(acme, loads([])) == []
    ours = info(FULL.evaluation_id, EvaluationStatus.PROVISIONING, executor_id="acme-job")
    await registry.track(DEFAULT_TENANT, FULL)
    await registry.track(acme, ours)

    assert await registry.get(DEFAULT_TENANT, FULL.evaluation_id) == FULL
    assert await registry.get(acme, FULL.evaluation_id) == ours
    assert await registry.list(DEFAULT_TENANT) == [FULL]
    assert await registry.list(acme) == [ours]

    await registry.untrack(acme, FULL.evaluation_id)
    assert await registry.get(acme, FULL.evaluation_id) is None
    assert await registry.list(acme) == []
    assert await registry.get(DEFAULT_TENANT, FULL.evaluation_id) == FULL


async def test_a_rebuild_replaces_one_tenants_index_only(registry: RunningRegistry) -> None:
    acme = TenantId("acme")
    await registry.rebuild(acme, loads([]))
    await registry.track(DEFAULT_TENANT, FULL)
    await registry.track(acme, info("eval_acme"))

    rebuilt = await registry.rebuild(acme, loads([info("eval_new")]))

    assert rebuilt == [info("eval_new")]
    assert await registry.list(acme) == [info("eval_new")]
    assert await registry.list(DEFAULT_TENANT) == [FULL]
