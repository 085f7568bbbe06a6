"""Optional retention inside the service: ``RETENTION_DAYS`` runs the cleanup periodically."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial

import anyio
from dishka import AsyncContainer

from application.ports.clock import Clock
from application.ports.evaluation_maintenance import PurgeSelection
from application.use_cases.cleanup import CleanupEvaluations, CleanupReport
from domain.status import TERMINAL_STATUSES
from interfaces import acting
from interfaces.background import periodic
from interfaces.settings import Settings

logger = logging.getLogger("storage_service.retention")


async def run_retention(container: AsyncContainer, days: int, stopping: anyio.Event) -> None:
    """One cleanup: finished and soft-deleted evaluations unchanged for ``days``.

    Once ``stopping`` is set, the cleanup ends after the batch being removed.
    """
    report = await _clean(container, days, stopping)
    logger.info(
        "retention: removed %d evaluation(s) older than %d day(s), %d blob(s)",
        report.evaluations,
        days,
        report.blobs,
        extra={"evaluations": report.evaluations, "blobs": report.blobs, "days": days},
    )


async def _clean(container: AsyncContainer, days: int, stopping: anyio.Event) -> CleanupReport:
    async with acting.system_scope(container) as request:
        clock = await request.get(Clock)
        cleanup = await request.get(CleanupEvaluations)
        selection = PurgeSelection(
            updated_before=clock.now() - timedelta(days=days),
            statuses=TERMINAL_STATUSES,
            include_deleted=True,
        )
        return await cleanup.execute(selection, stop=stopping.is_set)


@asynccontextmanager
async def retention(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """While the app runs: a cleanup at start and every ``RETENTION_INTERVAL_S`` (if enabled)."""
    days = settings.retention.days
    if days is None:
        yield
        return
    async with periodic(
        "retention", settings.retention.interval_s, partial(run_retention, container, days)
    ):
        yield
