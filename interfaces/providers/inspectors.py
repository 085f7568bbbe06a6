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
from interfaces.providers.keys import (
    BlobInspector,
    CacheInspector,
    DatabaseInspector,
    DatabaseProbe,
)


def _with_journal(
    found: list[BackendInspector], journal: Journal, clock: Clock
) -> list[BackendInspector]:
    if not isinstance(journal, NoJournal):
        found.append(JournalInspector(journal, clock))
    return found


class InspectorsProvider(Provider):
    @provide(scope=Scope.REQUEST)
    def inspectors(
        self,
        database: DatabaseInspector,
        blobs: BlobInspector,
        cache: CacheInspector,
        journal: Journal,
        clock: Clock,
    ) -> list[BackendInspector]:
        """The request's: the database counts the request's tenant's rows."""
        return _with_journal([database, blobs, cache], journal, clock)

    @provide(scope=Scope.APP)
    def probes(
        self,
        database: DatabaseProbe,
        blobs: BlobInspector,
        cache: CacheInspector,
        journal: Journal,
        clock: Clock,
    ) -> list[HealthProbe]:
        others = _with_journal([blobs, cache], journal, clock)
        return [database, *(as_probe(inspector) for inspector in others)]

    # Stateless: one per app, not one per health check.
    @provide(scope=Scope.APP)
    def check_health(self, probes: list[HealthProbe]) -> CheckHealth:
        return CheckHealth(probes)
