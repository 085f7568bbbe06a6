"""The RunningRegistry contract, held against the in-process and the Redis adapter.

The Redis adapter shares its keys with the platform's storage worker: the set
``running_evaluations`` and a JSON string ``eval:<id>:running``, which the worker
writes with ``SETEX`` (``executor_id``, ``container_id``, ``started_at``, ``timeout``;
TTL ``timeout + 60``) after its ``PUT`` running succeeded, then ``SADD``s the id.
The tests below marked "as the worker" write exactly that, with a plain client.
"""

import builtins
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis.asyncio as redis

from application.ports.running_registry import LoadActive, RunningRegistry
from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from infrastructure.memory.running_registry import MemoryRunningRegistry
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.running_registry import RedisRunningRegistry
from tests.redis_cluster import drop_keys, redis_target
from tests.services import TEST_REDIS_URL, drop_redis_keys, redis_test_prefix

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", marks=pytest.mark.redis_cluster),
    ]
)
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
        assert await redis_registry.list() is None  # never built: nothing to trust yet
        await redis_registry.rebuild(loads([]))  # what the service does at start
        yield redis_registry
    finally:
        await drop_keys(prefix, url, cluster)
        await connection.close()


@dataclass
class Shared:
    """The Redis registry and a plain client on the same keys: the platform's worker."""

    registry: RedisRunningRegistry
    worker: redis.Redis
    prefix: str

    def entry(self, evaluation_id: str) -> str:
        return f"{self.prefix}eval:{evaluation_id}:running"

    @property
    def members(self) -> str:
        return f"{self.prefix}running_evaluations"

    async def worker_runs(
        self,
        evaluation_id: str,
        executor_id: str,
        evaluation_timeout: int = 300,
        container: str | None = None,
    ) -> dict[str, object]:
        """``handle_evaluation_running``: SETEX the JSON entry, then SADD the id."""
        info: dict[str, object] = {
            "executor_id": executor_id,
            "container_id": container,
            "started_at": datetime.now(UTC).isoformat(),
            "timeout": evaluation_timeout,
        }
        # SETEX itself, the worker's command (redis-py marks its ``setex`` deprecated).
        entry, ttl = self.entry(evaluation_id), evaluation_timeout + 60
        await self.worker.execute_command("SETEX", entry, ttl, json.dumps(info))
        await self.worker.sadd(self.members, evaluation_id)
        return info

    async def stored(self, evaluation_id: str) -> dict[str, object]:
        raw = await self.worker.get(self.entry(evaluation_id))
        assert raw is not None, f"no entry for {evaluation_id}"
        fields: dict[str, object] = json.loads(raw)
        return fields


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", marks=pytest.mark.redis_cluster),
    ]
)
async def shared(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Shared]:
    url, cluster, prefix = redis_target(request)
    connection = RedisConnection(url, timeout_s=2.0, cluster=cluster)
    worker = connection.client  # the same kind of client the platform's worker holds
    try:
        registry = RedisRunningRegistry(connection, prefix=prefix)
        await registry.rebuild(loads([]))
        yield Shared(registry, worker, prefix)
    finally:
        await drop_keys(prefix, url, cluster)
        await connection.close()


def loads(infos: builtins.list[RunningInfo]) -> LoadActive:
    async def load() -> builtins.list[RunningInfo]:
        return infos

    return load


def info(
    evaluation_id: str,
    status: EvaluationStatus = EvaluationStatus.RUNNING,
    *,
    executor_id: str | None = None,
    container_id: str | None = None,
    started_at: datetime | None = None,
    timeout: int | None = None,
) -> RunningInfo:
    return RunningInfo(
        evaluation_id=EvaluationId(evaluation_id),
        status=status,
        executor_id=executor_id,
        container_id=container_id,
        started_at=started_at,
        timeout=timeout,
    )


FULL = info(
    "eval_20240101_000000_ab12",
    executor_id="executor-3",
    container_id="c0ffee",
    started_at=datetime(2024, 1, 1, 12, 30, 5, 123456, tzinfo=UTC),
    timeout=300,
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


async def test_track_again_merges_what_it_knows_and_keeps_the_rest(
    registry: RunningRegistry,
) -> None:
    await registry.track(FULL)
    moved = info(FULL.evaluation_id, EvaluationStatus.PROVISIONING, executor_id="executor-9")
    await registry.track(moved)
    merged = info(
        FULL.evaluation_id,
        EvaluationStatus.PROVISIONING,
        executor_id="executor-9",
        container_id=FULL.container_id,
        started_at=FULL.started_at,
        timeout=FULL.timeout,
    )
    assert await registry.get(FULL.evaluation_id) == merged
    assert await registry.list() == [merged]


async def test_started_at_keeps_its_offset(registry: RunningRegistry) -> None:
    offset = timezone(timedelta(hours=2))
    entry = info("eval_tz", started_at=datetime(2024, 6, 1, 8, 0, tzinfo=offset))
    await registry.track(entry)
    got = await registry.get(entry.evaluation_id)
    assert got == entry
    assert got is not None
    assert got.started_at is not None
    assert got.started_at.utcoffset() == timedelta(hours=2)


async def test_rebuild_replaces_everything(registry: RunningRegistry) -> None:
    await registry.track(FULL)
    await registry.track(info("eval_stale"))
    fresh = [info("eval_a", executor_id="x"), info("eval_b", EvaluationStatus.PROVISIONING)]
    assert await registry.rebuild(loads(fresh)) == fresh
    listed = await registry.list()
    assert listed is not None
    assert sorted(listed, key=lambda i: i.evaluation_id) == fresh
    assert await registry.get(EvaluationId("eval_stale")) is None
    assert await registry.get(FULL.evaluation_id) is None
    assert await registry.rebuild(loads([])) == []
    assert await registry.list() == []


async def test_rebuild_merges_into_the_entries_it_keeps(registry: RunningRegistry) -> None:
    """The database's view wins where it knows; the entry keeps what only it knew."""
    await registry.track(FULL)
    from_database = info(FULL.evaluation_id, EvaluationStatus.RUNNING, container_id="c-2")
    expected = info(
        FULL.evaluation_id,
        executor_id=FULL.executor_id,
        container_id="c-2",
        started_at=FULL.started_at,
        timeout=FULL.timeout,
    )

    assert await registry.rebuild(loads([from_database])) == [expected]
    assert await registry.list() == [expected]


async def test_a_change_tracked_during_a_rebuild_leaves_the_registry_untrusted(
    registry: RunningRegistry,
) -> None:
    """The load read the database before the change: its older view must not be trusted."""
    before_the_change = [info("eval_old")]

    async def load_then_race() -> builtins.list[RunningInfo]:
        await registry.track(info("eval_new"))  # committed and tracked while loading
        return before_the_change

    assert await registry.rebuild(load_then_race) == before_the_change
    assert await registry.list() is None

    async def load_untrack_race() -> builtins.list[RunningInfo]:
        await registry.untrack(EvaluationId("eval_old"))
        return before_the_change

    await registry.rebuild(load_untrack_race)
    assert await registry.list() is None

    fresh = [info("eval_new")]
    await registry.rebuild(loads(fresh))
    assert await registry.list() == fresh


async def test_ids_with_every_allowed_character(registry: RunningRegistry) -> None:
    entry = info("A-z_0.9:run")
    await registry.track(entry)
    assert await registry.get(entry.evaluation_id) == entry
    assert await registry.list() == [entry]


# The platform worker's keys (Redis and Redis Cluster).


async def test_the_entry_is_the_platforms_json_string(shared: Shared) -> None:
    await shared.registry.track(FULL)

    assert await shared.worker.type(shared.entry(FULL.evaluation_id)) == b"string"
    assert await shared.stored(FULL.evaluation_id) == {
        "eval_id": FULL.evaluation_id,
        "status": "running",
        "executor_id": "executor-3",
        "container_id": "c0ffee",
        "started_at": "2024-01-01T12:30:05.123456+00:00",
        "timeout": 300,
    }
    assert await shared.worker.sismember(shared.members, FULL.evaluation_id)
    assert await shared.worker.ttl(shared.entry(FULL.evaluation_id)) == -1  # ours: no TTL


async def test_the_workers_entry_is_read_as_running(shared: Shared) -> None:
    written = await shared.worker_runs("w-1", "job-w-1", evaluation_timeout=120, container="pod-1")

    got = await shared.registry.get(EvaluationId("w-1"))

    expected = info(
        "w-1",
        executor_id="job-w-1",
        container_id="pod-1",
        started_at=datetime.fromisoformat(str(written["started_at"])),
        timeout=120,
    )
    assert got == expected
    assert await shared.registry.list() == [expected]


async def test_track_merges_into_the_workers_entry_and_keeps_its_ttl(shared: Shared) -> None:
    """A PUT without the job name must not erase the one only the worker wrote."""
    written = await shared.worker_runs("w-2", "job-w-2", evaluation_timeout=300)
    ours = info("w-2", EvaluationStatus.RUNNING, container_id="c-ours")

    await shared.registry.track(ours)

    assert await shared.stored("w-2") == {
        **written,
        "eval_id": "w-2",
        "status": "running",
        "container_id": "c-ours",
    }
    assert 300 < await shared.worker.ttl(shared.entry("w-2")) <= 360
    got = await shared.registry.get(EvaluationId("w-2"))
    assert got is not None
    assert (got.executor_id, got.container_id, got.timeout) == ("job-w-2", "c-ours", 300)


async def test_the_workers_setex_after_ours_is_read_whole(shared: Shared) -> None:
    """The worker SETEXes after its PUT, replacing our fields: status reads as running."""
    await shared.registry.track(info("w-3", EvaluationStatus.RUNNING, container_id="ours"))
    await shared.worker_runs("w-3", "job-w-3")

    got = await shared.registry.get(EvaluationId("w-3"))

    assert got is not None
    assert (got.status, got.executor_id, got.container_id) == (
        EvaluationStatus.RUNNING,
        "job-w-3",
        None,
    )


async def test_a_member_without_its_entry_sends_the_caller_to_the_database(
    shared: Shared,
) -> None:
    """The worker's TTL ran out (or the entry is gone): only the database knows."""
    await shared.worker_runs("w-4", "job-w-4")
    await shared.worker_runs("w-5", "job-w-5")
    await shared.worker.delete(shared.entry("w-5"))  # as when its TTL runs out

    assert await shared.registry.list() is None

    database = [info("w-4", EvaluationStatus.RUNNING, container_id="c-4")]
    rebuilt = await shared.registry.rebuild(loads(database))

    assert [(i.evaluation_id, i.executor_id, i.container_id) for i in rebuilt] == [
        ("w-4", "job-w-4", "c-4")  # the job name only the worker's entry held
    ]
    assert await shared.worker.smembers(shared.members) == {b"w-4"}
    assert await shared.registry.list() == rebuilt


async def test_a_rebuild_leaves_the_workers_entries_to_their_ttl(shared: Shared) -> None:
    """An id the loaded view lacks loses its membership; its entry, if the worker's, stays.

    The view may predate the worker's PUT running: deleting would lose the job name.
    """
    await shared.worker_runs("w-6", "job-w-6")
    await shared.registry.track(info("ours-only"))

    await shared.registry.rebuild(loads([]))

    assert await shared.worker.smembers(shared.members) == set()
    assert await shared.worker.exists(shared.entry("w-6")) == 1
    assert await shared.worker.exists(shared.entry("ours-only")) == 0


async def test_untrack_removes_the_worker_keys_as_the_worker_does(shared: Shared) -> None:
    await shared.worker_runs("w-7", "job-w-7")

    await shared.registry.untrack(EvaluationId("w-7"))

    assert not await shared.worker.sismember(shared.members, "w-7")
    assert await shared.worker.exists(shared.entry("w-7")) == 0


async def test_unreadable_entries_are_hints_lost_not_failures(shared: Shared) -> None:
    """A hash (as some platform scripts write) or garbage: read as missing, merged over."""
    await shared.worker.hset(
        shared.entry("h-1"), mapping={"eval_id": "h-1", "status": "running", "started_at": "1.5"}
    )
    await shared.worker.sadd(shared.members, "h-1")
    await shared.worker.set(shared.entry("g-1"), b"not json")

    assert await shared.registry.get(EvaluationId("h-1")) is None
    assert await shared.registry.get(EvaluationId("g-1")) is None
    assert await shared.registry.list() is None

    await shared.registry.track(info("h-1", container_id="c-h"))
    await shared.registry.track(info("g-1"))

    assert await shared.stored("h-1") == {
        "eval_id": "h-1",
        "status": "running",
        "started_at": "1.5",  # the hash's field, kept; unreadable as a time
        "container_id": "c-h",
    }
    assert await shared.registry.get(EvaluationId("h-1")) == info("h-1", container_id="c-h")
    assert await shared.registry.get(EvaluationId("g-1")) == info("g-1")


async def test_the_earlier_hash_tagged_entries_are_removed_by_a_rebuild(shared: Shared) -> None:
    legacy = f"{shared.prefix}eval:{{old-1}}:running"
    await shared.worker.hset(legacy, mapping={"evaluation_id": "old-1", "status": "running"})
    await shared.worker.sadd(shared.members, "old-1")

    await shared.registry.rebuild(loads([info("old-1")]))

    assert await shared.worker.exists(legacy) == 0
    assert await shared.registry.list() == [info("old-1")]


@pytest.mark.redis
async def test_redis_index_lost_or_raced_is_untrusted_by_every_process(anyio_backend: str) -> None:
    prefix = redis_test_prefix()
    first = RedisConnection(TEST_REDIS_URL, timeout_s=2.0)
    second = RedisConnection(TEST_REDIS_URL, timeout_s=2.0)
    try:
        one = RedisRunningRegistry(first, prefix=prefix)
        other = RedisRunningRegistry(second, prefix=prefix)  # another process
        assert await one.list() is None
        await one.rebuild(loads([FULL]))
        assert await other.list() == [FULL]
        state = await first.client.hgetall(f"{prefix}running_evaluations:state")
        assert b"built" in state

        async def race() -> builtins.list[RunningInfo]:
            await other.track(info("eval_other"))
            return [FULL]

        await one.rebuild(race)
        assert await other.list() is None
        assert await one.list() is None

        await other.rebuild(loads([FULL, info("eval_other")]))
        assert await one.list() == [FULL, info("eval_other")]

        # Redis loses everything (FLUSHDB, restart without persistence) but our prefix:
        await drop_redis_keys(prefix)
        assert await one.list() is None
        assert await other.list() is None
    finally:
        await drop_redis_keys(prefix)
        await first.close()
        await second.close()
