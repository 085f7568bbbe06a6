from abc import abstractmethod
from typing import Protocol

from domain.identifiers import EvaluationId
from domain.tenancy import TenantId


class WorkerLogs(Protocol):
    """The latest log batch the platform's storage worker left for a running evaluation.

        The worker keeps it beside this service's own log, for a few minutes after
        each batch it flushed; it is a hint for showing a running evaluation's
        output, never part of the log. The worker writes for ``PLATFORM_TENANT`` only: another
    tenant's evaluations have no batch. Implementations swallow their own outages.
    """

    @abstractmethod
    async def latest(self, tenant: TenantId, evaluation_id: EvaluationId) -> str | None:
        """The batch's text, or ``None`` when there is none or it cannot be read."""

    @abstractmethod
    async def forget(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        """Delete the batch (erasure); an outage is swallowed, the key expires by itself."""
