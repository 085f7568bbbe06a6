"""No platform worker writes beside this service without Redis."""

from application.ports.worker_logs import WorkerLogs
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId


class NoWorkerLogs(WorkerLogs):
    """``WorkerLogs`` that never holds a batch (no ``REDIS_URL``)."""

    async def latest(self, tenant: TenantId, evaluation_id: EvaluationId) -> str | None:  # noqa: ARG002 - holds none
        return None

    async def forget(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        pass
