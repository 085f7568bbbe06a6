from datetime import UTC, datetime

from application.ports.clock import Clock


class SystemClock(Clock):
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)
