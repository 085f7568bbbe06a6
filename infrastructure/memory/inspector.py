"""What the in-memory backends' inspectors share: they are up whenever the process is."""

from application.ports.backend_inspector import BackendInspector
from application.ports.health_probe import HealthProbe
from application.queries import BackendReport, MetricValue


class MemoryInspector(BackendInspector, HealthProbe):
    """Reports a backend held in this process: type ``memory``, always ``healthy``."""

    async def probe(self) -> BackendReport:
        return self.healthy()

    def healthy(
        self,
        metrics: dict[str, MetricValue] | None = None,
        details: dict[str, MetricValue] | None = None,
        listings: dict[str, list[str]] | None = None,
    ) -> BackendReport:
        return BackendReport(
            name=self.name,
            type="memory",
            status="healthy",
            metrics=metrics or {},
            details=details or {},
            listings=listings or {},
        )
