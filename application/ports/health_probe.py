from abc import abstractmethod
from typing import Protocol, runtime_checkable

from application.queries import BackendReport


@runtime_checkable
class HealthProbe(Protocol):
    """A cheap reachability check of one backend, for ``GET /health``.

    Unlike ``BackendInspector.inspect`` it measures nothing that grows with the
    data (no row counts, no directory walks): one round trip at most.
    """

    name: str

    @abstractmethod
    async def probe(self) -> BackendReport:
        """Status only (``metrics`` may hold a figure or two); never raises."""
