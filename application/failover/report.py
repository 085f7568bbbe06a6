"""The failover journal as a backend of ``/health`` and the storage overview."""

from application.backends import Backend
from application.ports.backend_inspector import BackendInspector
from application.ports.clock import Clock
from application.ports.health_probe import HealthProbe
from application.ports.journal import Journal
from application.queries import BackendReport


class JournalInspector(BackendInspector, HealthProbe):
    """Degraded while entries wait for the primary; says whether they survive a crash."""

    name: str = Backend.FALLBACK

    def __init__(self, journal: Journal, clock: Clock) -> None:
        self._journal = journal
        self._clock = clock

    @property
    def durable(self) -> bool:
        return self._journal.durable

    async def probe(self) -> BackendReport:
        return await self.inspect()

    async def inspect(self, *, detailed: bool = False) -> BackendReport:  # noqa: ARG002
        try:
            stats = await self._journal.stats()
        except OSError as error:
            return BackendReport(
                name=Backend.FALLBACK,
                type=self._journal.name,
                status="unavailable",
                error=str(error),
            )
        waited = stats.oldest_age_s(self._clock.now())
        age = None if waited is None else round(waited, 3)
        return BackendReport(
            name=Backend.FALLBACK,
            type=self._journal.name,
            status="degraded" if stats.pending else "healthy",
            metrics={"pending_replay": stats.pending, "oldest_pending_age_s": age},
            details={
                "durable": "yes: fsync'd before a write is acknowledged"
                if self._journal.durable
                else "no: entries are lost if the process stops (for tests only)"
            },
        )
