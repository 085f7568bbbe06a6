from abc import abstractmethod
from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """The only source of 'now', so use cases stay testable."""

    @abstractmethod
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
