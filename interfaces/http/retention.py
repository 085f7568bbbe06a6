"""Optional retention inside the service: ``RETENTION_DAYS`` runs the cleanup periodically,
a round per tenant."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import anyio
from dishka import AsyncContainer

from application.ports.clock import Clock
from application.ports.evaluation_maintenance import PurgeSelection
from application.use_cases.cleanup import CleanupEvaluations, CleanupReport
from domain.status import TERMINAL_STATUSES
from domain.tenancy import TenantId
from interfaces import acting
from interfaces.background import periodic
from interfaces.settings import Settings
from interfaces.tenant_rounds import each_tenant

logger = logging.getLogger("storage_service.retention")


async def run_retention(
    container: AsyncContainer, settings: Settings, days: int, stopping: anyio.Event
) -> dict[TenantId, CleanupReport]:
    """One cleanup per tenant: finished and soft-deleted evaluations unchanged for ``days``.

    Once ``stopping`` is set, the cleanup ends after the batch being removed.
    """

    async def clean(tenant: TenantId) -> CleanupReport:
        report = await _clean(container, tenant, days, stopping)
        logger.info(
            "retention: removed %d evaluation(s) of tenant %s older than %d day(s), %d blob(s)",
            report.evaluations,
            tenant,
            days,
            report.blobs,
            extra={
                "tenant": tenant,
                "evaluations": report.evaluations,
                "blobs": report.blobs,
                "days": days,
            },
        )
        return report

    return await each_tenant("retention", settings.access.tenants, clean, stopping)


async def _clean(
    container: AsyncContainer, tenant: TenantId, days: int, stopping: anyio.Event
) -> CleanupReport:
    async with acting.system_scope(container, tenant) as request:
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

    async def round_(stopping: anyio.Event) -> None:
        await run_retention(container, settings, days, stopping)

    async with periodic("retention", settings.retention.interval_s, round_):
        yield
