"""What ``/health`` and the storage reports inspect."""

from dishka import (
    Provider,
    Scope,
    provide,
)

from application.failover.report import JournalInspector
from application.ports.backend_inspector import BackendInspector
from application.ports.clock import Clock
from application.ports.health_probe import HealthProbe
from application.ports.journal import Journal
from application.use_cases.storage_report import (
    CheckHealth,
    as_probe,
)
from infrastructure.memory.journal import NoJournal
from interfaces.providers.keys import BlobInspector, CacheInspector, DatabaseInspector


class InspectorsProvider(Provider):
    @provide(scope=Scope.APP)
    def inspectors(
        self,
        database: DatabaseInspector,
        blobs: BlobInspector,
        cache: CacheInspector,
        journal: Journal,
        clock: Clock,
    ) -> list[BackendInspector]:
        found: list[BackendInspector] = [database, blobs, cache]
        if not isinstance(journal, NoJournal):
            found.append(JournalInspector(journal, clock))
        return found

    @provide(scope=Scope.APP)
    def probes(self, inspectors: list[BackendInspector]) -> list[HealthProbe]:
        return [as_probe(inspector) for inspector in inspectors]

    # Stateless: one per app, not one per health check.
    @provide(scope=Scope.APP)
    def check_health(self, probes: list[HealthProbe]) -> CheckHealth:
        return CheckHealth(probes)
