"""The platform worker's latest log batch: ``logs:<id>:latest``, plain text.

The worker ``SETEX``es it (TTL 300 s) with the batch it has just appended
through ``POST /evaluations/{id}/logs``, joined by newlines. The name has no
hash tag (it is the platform's) and differs from this service's own log tail,
``logs:{<id>}:latest``, a hash (ADR 0014). The name serves ``PLATFORM_TENANT``; another
tenant's is qualified, ``logs:<tenant>/<id>:latest``, which no worker writes (ADR 0032).
"""

import redis.asyncio as redis

from application.ports.worker_logs import WorkerLogs
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from infrastructure.redis.connection import RedisConnection, RedisUnavailableError
from infrastructure.redis.platform_keys import PlatformKeys


class RedisWorkerLogs(WorkerLogs):
    """``WorkerLogs`` on Redis; the key is ``prefix + logs:<id>:latest``, named by ``keys``."""

    def __init__(
        self, connection: RedisConnection, prefix: str = "", keys: PlatformKeys | None = None
    ) -> None:
        self._connection = connection
        self._prefix = prefix
        self._keys = keys or PlatformKeys()

    async def latest(self, tenant: TenantId, evaluation_id: EvaluationId) -> str | None:
        key = self._prefix + self._keys.worker_log(tenant, evaluation_id)

        async def read(client: redis.Redis) -> bytes | str | None:
            value: bytes | str | None = await client.get(key)
            return value

        try:
            value = await self._connection.execute(read)
        except RedisUnavailableError:  # also a key of another type (WRONGTYPE)
            return None
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        return value

    async def forget(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        key = self._prefix + self._keys.worker_log(tenant, evaluation_id)

        async def delete(client: redis.Redis) -> None:
            await client.delete(key)

        try:
            await self._connection.execute(delete)
        except RedisUnavailableError:
            return
