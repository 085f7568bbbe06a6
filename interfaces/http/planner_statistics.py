"""The planner's statistics kept current inside the service (``DB_ANALYZE_INTERVAL_S``).

PostgreSQL plans a page of the list from its statistics of the table; where autovacuum
is off or behind, a table that grew has none (or stale ones) and the page can turn
into a read and sort of every live row (23.7 ms at 45k rows, 0.11 ms by the index once
analyzed; ADR 0018). So the service checks at start and then periodically, and
analyzes what changed enough.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio
from dishka import AsyncContainer

from application.ports.planner_statistics import PlannerStatistics
from interfaces.background import periodic
from interfaces.settings import Settings

logger = logging.getLogger("storage_service.planner_statistics")


async def refresh_planner_statistics(container: AsyncContainer, _stopping: anyio.Event) -> None:
    """One check: ``ANALYZE`` of the tables whose statistics lag (none while another
    instance checks). One statement per table, so the stop waits for one at most."""
    statistics = await container.get(PlannerStatistics)
    analyzed = await statistics.refresh()
    if analyzed:
        logger.info(
            "planner statistics: analyzed %s", ", ".join(analyzed), extra={"tables": analyzed}
        )


@asynccontextmanager
async def planner_statistics(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """While the app runs: a check at start and every ``DB_ANALYZE_INTERVAL_S`` (if not 0)."""
    interval = settings.database.analyze_interval_s
    if not interval:
        yield
        return
    async with periodic(
        "planner statistics", interval, partial(refresh_planner_statistics, container)
    ):
        yield
