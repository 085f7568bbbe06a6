import builtins

from application.ports.planner_statistics import PlannerStatistics


class NoPlannerStatistics(PlannerStatistics):
    """``PlannerStatistics`` where there are none to keep.

    Process memory plans nothing; SQLite without ``sqlite_stat1`` picks its plans by
    rules that prefer an index serving the filter and the order, the list's case.
    """

    async def refresh(self) -> builtins.list[str]:
        return []
