"""What this process last learnt of the primary, so an outage costs one timeout, not one per write.

A write that finds the primary unavailable marks it down; while it is down the
failover journal's views take the record's base state from the cache instead of
waiting on the primary again (a black-holed host costs ``DB_CONNECT_TIMEOUT_S``
per attempt). The replayer marks it up once a replay succeeds.
"""

from datetime import datetime

from application.ports.clock import Clock


class PrimaryState:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.down_since: datetime | None = None

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def mark_down(self) -> None:
        if self.down_since is None:
            self.down_since = self._clock.now()

    def mark_up(self) -> None:
        self.down_since = None
