"""The WorkerLogs contract (the platform worker's ``logs:<id>:latest``) over the adapter
without Redis and the Redis one (single node and cluster): read, and forget for erasure."""

from collections.abc import AsyncIterator

import pytest

from application.ports.worker_logs import WorkerLogs
from domain.identifiers import EvaluationId
from infrastructure.memory.worker_logs import NoWorkerLogs
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.worker_logs import RedisWorkerLogs, latest_key
from tests.redis_cluster import ADAPTER_PARAMS, drop_keys, redis_target

pytestmark = pytest.mark.anyio

EVAL = EvaluationId("eval_1")
OTHER = EvaluationId("eval_2")


class Written:
    """The adapter, and how the test leaves a batch where the platform's worker would."""

    def __init__(self, logs: WorkerLogs, connection: RedisConnection | None, prefix: str) -> None:
        self.logs = logs
        self._connection = connection
        self._prefix = prefix

    async def worker_writes(self, evaluation_id: EvaluationId, text: str) -> None:
        if self._connection is None:
            return
        key = self._prefix + latest_key(evaluation_id)
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
    held = await written.logs.latest(EVAL)

    await written.logs.forget(EVAL)
    await written.logs.forget(EVAL)  # again: nothing to forget is no error

    assert await written.logs.latest(EVAL) is None
    if isinstance(written.logs, RedisWorkerLogs):
        assert held == "line ✓\n"
        assert await written.logs.latest(OTHER) == "other\n"
    else:
        assert held is None  # without Redis no worker writes beside the service
