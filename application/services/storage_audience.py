"""What of the storage report a caller sees (ADR 0032).

The deployment's physical figures (tables' rows and sizes, the file store's size and
largest files, the cache's memory, keys and their sample, buckets' sizes) are the
deployment's, not a tenant's: the default tenant's keys see them, as the platform's
pages always have. Another tenant's report names each backend with its kind and state,
and counts nothing but its own evaluations (its counters): the database's
``evaluations``, ``events`` and ``log_bytes``; every other figure is left out.
"""

from dataclasses import dataclass

import msgspec

from application.backends import Backend
from application.ports.evaluation_queries import EvaluationQueries
from application.queries import BackendReport, MetricValue
from domain.tenancy import DEFAULT_TENANT, TenantId


@dataclass(frozen=True, slots=True)
class StorageAudience:
    """The request's tenant, as the storage report's reader."""

    tenant: TenantId
    queries: EvaluationQueries

    @property
    def sees_deployment(self) -> bool:
        return self.tenant == DEFAULT_TENANT

    async def shown(self, report: BackendReport) -> BackendReport:
        """``report`` as this reader may see it."""
        if self.sees_deployment:
            return report
        counts: dict[str, MetricValue] = {}
        if report.name == Backend.DATABASE and report.status != "unavailable":
            statistics = await self.queries.statistics()
            counts = {
                "evaluations": statistics.total,
                "events": statistics.events,
                "log_bytes": statistics.log_bytes,
            }
        return msgspec.structs.replace(report, metrics=counts, details={}, listings={}, classes={})

    async def all_shown(self, reports: dict[str, BackendReport]) -> dict[str, BackendReport]:
        return {name: await self.shown(report) for name, report in reports.items()}
