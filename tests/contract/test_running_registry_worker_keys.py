"""The Redis RunningRegistry on the keys it shares with the platform's storage worker.

The Redis adapter shares its keys with the platform's storage worker: the set
``running_evaluations`` and a JSON string ``eval:<id>:running``, which the worker
writes with ``SETEX`` (``executor_id``, ``container_id``, ``started_at``, ``timeout``;
TTL ``timeout + 60``) after its ``PUT`` running succeeded, then ``SADD``s the id.
The tests below marked "as the worker" write exactly that, with a plain client.
"""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis

from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.platform_keys import PlatformKeys
from infrastructure.redis.running_registry import RedisRunningRegistry
from tests.contract.running_infos import FULL, info, loads
from tests.redis_cluster import REDIS_PARAMS, drop_keys, redis_target
from tests.services import TEST_REDIS_URL, drop_redis_keys, redis_test_prefix

pytestmark = pytest.mark.anyio

# ``FULL`` as this service writes it into an entry.
FULL_ENTRY = {
    "eval_id": FULL.evaluation_id,
    "status": "running",
    "executor_id": "executor-3",
    "container_id": "c0ffee",
    "started_at": "2024-01-01T12:30:05.123456+00:00",
    "timeout": 300,
}


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


@pytest.fixture(params=REDIS_PARAMS)
async def shared(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Shared]:
    url, cluster, prefix = redis_target(request)
    connection = RedisConnection(url, timeout_s=2.0, cluster=cluster)
    worker = connection.client  # the same kind of client the platform's worker holds
    try:
        registry = RedisRunningRegistry(connection, prefix=prefix)
        await registry.rebuild(DEFAULT_TENANT, loads([]))
        yield Shared(registry, worker, prefix)
    finally:
        await drop_keys(prefix, url, cluster)
        await connection.close()


async def test_the_entry_is_the_platforms_json_string(shared: Shared) -> None:
    await shared.registry.track(DEFAULT_TENANT, FULL)

    assert await shared.worker.type(shared.entry(FULL.evaluation_id)) == b"string"
    assert await shared.stored(FULL.evaluation_id) == FULL_ENTRY
    assert await shared.worker.sismember(shared.members, FULL.evaluation_id)
    assert await shared.worker.ttl(shared.entry(FULL.evaluation_id)) == -1  # ours: no TTL


async def test_the_workers_entry_is_read_as_running(shared: Shared) -> None:
    written = await shared.worker_runs("w-1", "job-w-1", evaluation_timeout=120, container="pod-1")

    got = await shared.registry.get(DEFAULT_TENANT, EvaluationId("w-1"))

    expected = info(
        "w-1",
        executor_id="job-w-1",
        container_id="pod-1",
        started_at=datetime.fromisoformat(str(written["started_at"])),
        timeout=120,
    )
    assert got == expected
    assert await shared.registry.list(DEFAULT_TENANT) == [expected]


async def test_track_merges_into_the_workers_entry_and_keeps_its_ttl(shared: Shared) -> None:
    """A PUT without the job name must not erase the one only the worker wrote."""
    written = await shared.worker_runs("w-2", "job-w-2", evaluation_timeout=300)
    ours = info("w-2", EvaluationStatus.RUNNING, container_id="c-ours")

    await shared.registry.track(DEFAULT_TENANT, ours)

    assert await shared.stored("w-2") == {
        **written,
        "eval_id": "w-2",
        "status": "running",
        "container_id": "c-ours",
    }
    assert 300 < await shared.worker.ttl(shared.entry("w-2")) <= 360
    got = await shared.registry.get(DEFAULT_TENANT, EvaluationId("w-2"))
    assert got is not None
    assert (got.executor_id, got.container_id, got.timeout) == ("job-w-2", "c-ours", 300)


async def test_the_workers_setex_after_ours_is_read_whole(shared: Shared) -> None:
    """The worker SETEXes after its PUT, replacing our fields: status reads as running."""
    await shared.registry.track(
        DEFAULT_TENANT, info("w-3", EvaluationStatus.RUNNING, container_id="ours")
    )
    await shared.worker_runs("w-3", "job-w-3")

    got = await shared.registry.get(DEFAULT_TENANT, EvaluationId("w-3"))

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

    assert await shared.registry.list(DEFAULT_TENANT) is None

    database = [info("w-4", EvaluationStatus.RUNNING, container_id="c-4")]
    rebuilt = await shared.registry.rebuild(DEFAULT_TENANT, loads(database))

    assert [(i.evaluation_id, i.executor_id, i.container_id) for i in rebuilt] == [
        ("w-4", "job-w-4", "c-4")  # the job name only the worker's entry held
    ]
    assert await shared.worker.smembers(shared.members) == {b"w-4"}
    assert await shared.registry.list(DEFAULT_TENANT) == rebuilt


async def test_a_rebuild_leaves_the_workers_entries_to_their_ttl(shared: Shared) -> None:
    """An id the loaded view lacks loses its membership; its entry, if the worker's, stays.

    The view may predate the worker's PUT running: deleting would lose the job name.
    """
    await shared.worker_runs("w-6", "job-w-6")
    await shared.registry.track(DEFAULT_TENANT, info("ours-only"))

    await shared.registry.rebuild(DEFAULT_TENANT, loads([]))

    assert await shared.worker.smembers(shared.members) == set()
    assert await shared.worker.exists(shared.entry("w-6")) == 1
    assert await shared.worker.exists(shared.entry("ours-only")) == 0


async def test_untrack_removes_the_worker_keys_as_the_worker_does(shared: Shared) -> None:
    await shared.worker_runs("w-7", "job-w-7")

    await shared.registry.untrack(DEFAULT_TENANT, EvaluationId("w-7"))

    assert not await shared.worker.sismember(shared.members, "w-7")
    assert await shared.worker.exists(shared.entry("w-7")) == 0


async def test_unreadable_entries_are_hints_lost_not_failures(shared: Shared) -> None:
    """A hash (as some platform scripts write) or garbage: read as missing, merged over."""
    await shared.worker.hset(
        shared.entry("h-1"), mapping={"eval_id": "h-1", "status": "running", "started_at": "1.5"}
    )
    await shared.worker.sadd(shared.members, "h-1")
    await shared.worker.set(shared.entry("g-1"), b"not json")

    assert await shared.registry.get(DEFAULT_TENANT, EvaluationId("h-1")) is None
    assert await shared.registry.get(DEFAULT_TENANT, EvaluationId("g-1")) is None
    assert await shared.registry.list(DEFAULT_TENANT) is None

    await shared.registry.track(DEFAULT_TENANT, info("h-1", container_id="c-h"))
    await shared.registry.track(DEFAULT_TENANT, info("g-1"))

    assert await shared.stored("h-1") == {
        "eval_id": "h-1",
        "status": "running",
        "started_at": "1.5",  # the hash's field, kept; unreadable as a time
        "container_id": "c-h",
    }
    assert await shared.registry.get(DEFAULT_TENANT, EvaluationId("h-1")) == info(
        "h-1", container_id="c-h"
    )
    assert await shared.registry.get(DEFAULT_TENANT, EvaluationId("g-1")) == info("g-1")


async def test_the_earlier_hash_tagged_entries_are_removed_by_a_rebuild(shared: Shared) -> None:
    legacy = f"{shared.prefix}eval:{{old-1}}:running"
    await shared.worker.hset(legacy, mapping={"evaluation_id": "old-1", "status": "running"})
    await shared.worker.sadd(shared.members, "old-1")

    await shared.registry.rebuild(DEFAULT_TENANT, loads([info("old-1")]))

    assert await shared.worker.exists(legacy) == 0
    assert await shared.registry.list(DEFAULT_TENANT) == [info("old-1")]


async def test_another_tenant_neither_writes_nor_reads_the_platforms_keys(
    shared: Shared,
) -> None:
    """ADR 0032: the platform's names serve PLATFORM_TENANT (here the default) only."""
    acme = TenantId("acme")
    await shared.worker_runs(FULL.evaluation_id, "job-platform")
    await shared.registry.rebuild(acme, loads([]))

    await shared.registry.track(acme, FULL)

    assert await shared.stored(f"acme/{FULL.evaluation_id}") == FULL_ENTRY
    assert (await shared.stored(FULL.evaluation_id))["executor_id"] == "job-platform"
    assert await shared.worker.smembers(shared.members) == {FULL.evaluation_id.encode()}
    acme_set = f"{shared.prefix}running_evaluations:{{acme}}"
    assert await shared.worker.smembers(acme_set) == {FULL.evaluation_id.encode()}
    assert await shared.worker.hexists(f"{acme_set}:state", "built")
    assert await shared.registry.list(acme) == [FULL]

    await shared.registry.untrack(acme, FULL.evaluation_id)
    assert await shared.registry.list(acme) == []
    assert await shared.worker.sismember(shared.members, FULL.evaluation_id)
    got = await shared.registry.get(DEFAULT_TENANT, FULL.evaluation_id)
    assert got is not None
    assert got.executor_id == "job-platform"


async def test_platform_tenant_takes_the_platforms_keys(anyio_backend: str) -> None:
    """``PLATFORM_TENANT=acme``: acme's entries are the worker's, the default tenant's are
    qualified like any other tenant's."""
    acme = TenantId("acme")
    prefix = redis_test_prefix()
    connection = RedisConnection(TEST_REDIS_URL, timeout_s=2.0)
    worker = connection.client
    try:
        registry = RedisRunningRegistry(connection, prefix=prefix, keys=PlatformKeys(acme))
        shared = Shared(registry, worker, prefix)
        await shared.worker_runs("w-1", "job-acme")
        await registry.rebuild(DEFAULT_TENANT, loads([]))

        await registry.track(DEFAULT_TENANT, info("w-1", container_id="c-default"))

        acme_entry = await registry.get(acme, EvaluationId("w-1"))
        assert acme_entry is not None
        assert acme_entry.executor_id == "job-acme"
        assert await shared.stored("default/w-1") == {
            "eval_id": "w-1",
            "status": "running",
            "container_id": "c-default",
        }
        assert await registry.get(DEFAULT_TENANT, EvaluationId("w-1")) == info(
            "w-1", container_id="c-default"
        )
        assert await worker.smembers(f"{prefix}running_evaluations") == {b"w-1"}
        assert await worker.smembers(f"{prefix}running_evaluations:{{default}}") == {b"w-1"}
    finally:
        await drop_redis_keys(prefix)
        await connection.close()
