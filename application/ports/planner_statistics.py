import builtins
from abc import abstractmethod
from typing import Protocol


class PlannerStatistics(Protocol):
    """The statistics a database plans the service's queries with, kept current.

    Without them (a table grown or bulk-loaded where autovacuum is off or behind) a
    planner can read and sort every live row for a page that one index serves.
    """

    @abstractmethod
    async def refresh(self) -> builtins.list[str]:
        """Take new statistics of each of the service's tables that changed enough since
        its last ones: more than 50 rows plus 10 % of its rows (autovacuum's defaults).

        One instance at a time: while another one refreshes, this returns at once.
        Returns the tables analyzed, by name (none where the store plans without them).
        """
