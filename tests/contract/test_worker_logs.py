"""The WorkerLogs contract (the platform worker's ``logs:<id>:latest``) over the adapter
without Redis and the Redis one (single node and cluster): read, and forget for erasure;
the worker's batch is ``PLATFORM_TENANT``'s only (ADR 0032)."""

from collections.abc import AsyncIterator

import pytest

from application.ports.worker_logs import WorkerLogs
from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.memory.worker_logs import NoWorkerLogs
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.platform_keys import PlatformKeys
from infrastructure.redis.worker_logs import RedisWorkerLogs
from tests.redis_cluster import ADAPTER_PARAMS, drop_keys, redis_target
from tests.services import TEST_REDIS_URL, drop_redis_keys, redis_test_prefix

pytestmark = pytest.mark.anyio

EVAL = EvaluationId("eval_1")
OTHER = EvaluationId("eval_2")
ACME = TenantId("acme")


class Written:
    """The adapter, and how the test leaves a batch where the platform's worker would."""

    def __init__(self, logs: WorkerLogs, connection: RedisConnection | None, prefix: str) -> None:
        self.logs = logs
        self._connection = connection
        self._prefix = prefix

    async def worker_writes(self, evaluation_id: EvaluationId, text: str) -> None:
        if self._connection is None:
            return
        key = f"{self._prefix}logs:{evaluation_id}:latest"  # the worker's name (ADR 0014)
        await self._connection.execute(lambda client: client.setex(key, 300, text.encode()))


@pytest.fixture(params=ADAPTER_PARAMS)
async def written(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Written]:
    if request.param == "memory":
        yield Written(NoWorkerLogs(), None, "")
        return
    url, cluster, prefix = redis_target(request)
    connection = RedisConnection(url, timeout_s=2.0, cluster=cluster)
    try:
        yield Written(RedisWorkerLogs(connection, prefix), connection, prefix)
    finally:
        await drop_keys(prefix, url, cluster)
        await connection.close()


async def test_forget_removes_one_evaluations_batch_and_keeps_the_others(
    written: Written,
) -> None:
    await written.worker_writes(EVAL, "line ✓\n")
    await written.worker_writes(OTHER, "other\n")
    held = await written.logs.latest(DEFAULT_TENANT, EVAL)

    await written.logs.forget(DEFAULT_TENANT, EVAL)
    await written.logs.forget(DEFAULT_TENANT, EVAL)  # again: nothing to forget is no error

    assert await written.logs.latest(DEFAULT_TENANT, EVAL) is None
    if isinstance(written.logs, RedisWorkerLogs):
        assert held == "line ✓\n"
        assert await written.logs.latest(DEFAULT_TENANT, OTHER) == "other\n"
    else:
        assert held is None  # without Redis no worker writes beside the service


async def test_the_workers_batch_is_the_default_tenants_only(written: Written) -> None:
    await written.worker_writes(EVAL, "platform\n")

    assert await written.logs.latest(ACME, EVAL) is None
    await written.logs.forget(ACME, EVAL)  # another tenant's erasure leaves it

    expected = "platform\n" if isinstance(written.logs, RedisWorkerLogs) else None
    assert await written.logs.latest(DEFAULT_TENANT, EVAL) == expected


async def test_platform_tenant_names_whose_batch_the_worker_writes(anyio_backend: str) -> None:
    """``PLATFORM_TENANT=acme``: the worker's key is acme's, and the default tenant's is
    qualified like any other tenant's."""
    prefix = redis_test_prefix()
    connection = RedisConnection(TEST_REDIS_URL, timeout_s=2.0)
    try:
        logs = RedisWorkerLogs(connection, prefix, PlatformKeys(ACME))
        written = Written(logs, connection, prefix)
        await written.worker_writes(EVAL, "acme's\n")

        assert await logs.latest(ACME, EVAL) == "acme's\n"
        assert await logs.latest(DEFAULT_TENANT, EVAL) is None
        await logs.forget(DEFAULT_TENANT, EVAL)
        assert await logs.latest(ACME, EVAL) == "acme's\n"
    finally:
        await drop_redis_keys(prefix)
        await connection.close()
