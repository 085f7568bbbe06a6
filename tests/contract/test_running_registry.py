"""The RunningRegistry contract, held against the in-process and the Redis adapter."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from application.ports.running_registry import RunningRegistry
from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from infrastructure.memory.running_registry import MemoryRunningRegistry
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.running_registry import RedisRunningRegistry
from tests.services import TEST_REDIS_URL, drop_redis_keys, redis_test_prefix

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def registry(
    request: pytest.FixtureRequest, anyio_backend: str
) -> AsyncIterator[RunningRegistry]:
    if request.param == "memory":
        yield MemoryRunningRegistry()
        return
    prefix = redis_test_prefix()
    connection = RedisConnection(TEST_REDIS_URL, timeout_s=2.0)
    try:
        yield RedisRunningRegistry(connection, prefix=prefix)
    finally:
        await drop_redis_keys(prefix)
        await connection.close()


def info(
    evaluation_id: str,
    status: EvaluationStatus = EvaluationStatus.RUNNING,
    *,
    executor_id: str | None = None,
    container_id: str | None = None,
    started_at: datetime | None = None,
) -> RunningInfo:
    return RunningInfo(
        evaluation_id=EvaluationId(evaluation_id),
        status=status,
        executor_id=executor_id,
        container_id=container_id,
        started_at=started_at,
    )


FULL = info(
    "eval_20240101_000000_ab12",
    executor_id="executor-3",
    container_id="c0ffee",
    started_at=datetime(2024, 1, 1, 12, 30, 5, 123456, tzinfo=UTC),
)


async def test_track_get_list_untrack(registry: RunningRegistry) -> None:
    assert await registry.list() == []
    assert await registry.get(FULL.evaluation_id) is None
    await registry.track(FULL)
    await registry.track(info("eval_2", EvaluationStatus.PROVISIONING))
    assert await registry.get(FULL.evaluation_id) == FULL
    assert await registry.get(EvaluationId("eval_2")) == info(
        "eval_2", EvaluationStatus.PROVISIONING
    )
    listed = await registry.list()
    assert listed is not None
    assert sorted(listed, key=lambda i: i.evaluation_id) == sorted(
        [FULL, info("eval_2", EvaluationStatus.PROVISIONING)], key=lambda i: i.evaluation_id
    )
    await registry.untrack(FULL.evaluation_id)
    await registry.untrack(FULL.evaluation_id)
    await registry.untrack(EvaluationId("never_tracked"))
    assert await registry.get(FULL.evaluation_id) is None
    assert await registry.list() == [info("eval_2", EvaluationStatus.PROVISIONING)]


async def test_track_again_replaces_every_field(registry: RunningRegistry) -> None:
    await registry.track(FULL)
    moved = info(FULL.evaluation_id, EvaluationStatus.RUNNING, executor_id="executor-9")
    await registry.track(moved)
    assert await registry.get(FULL.evaluation_id) == moved
    assert await registry.list() == [moved]


async def test_started_at_keeps_its_offset(registry: RunningRegistry) -> None:
    offset = timezone(timedelta(hours=2))
    entry = info("eval_tz", started_at=datetime(2024, 6, 1, 8, 0, tzinfo=offset))
    await registry.track(entry)
    got = await registry.get(entry.evaluation_id)
    assert got == entry
    assert got is not None
    assert got.started_at is not None
    assert got.started_at.utcoffset() == timedelta(hours=2)


async def test_replace_all_rebuilds(registry: RunningRegistry) -> None:
    await registry.track(FULL)
    await registry.track(info("eval_stale"))
    fresh = [info("eval_a", executor_id="x"), info("eval_b", EvaluationStatus.PROVISIONING)]
    await registry.replace_all(fresh)
    listed = await registry.list()
    assert listed is not None
    assert sorted(listed, key=lambda i: i.evaluation_id) == fresh
    assert await registry.get(EvaluationId("eval_stale")) is None
    assert await registry.get(FULL.evaluation_id) is None
    await registry.replace_all([])
    assert await registry.list() == []


async def test_ids_with_every_allowed_character(registry: RunningRegistry) -> None:
    entry = info("A-z_0.9:run")
    await registry.track(entry)
    assert await registry.get(entry.evaluation_id) == entry
    assert await registry.list() == [entry]
