from abc import abstractmethod
from typing import Protocol

from application.queries import BackendReport


class BackendInspector(Protocol):
    """Measures one backend for health, overview and details pages."""

    name: str

    @abstractmethod
    async def inspect(self, *, detailed: bool = False) -> BackendReport:
        """Status and measured figures; never raises for an unreachable backend."""
