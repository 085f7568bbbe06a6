"""Optional tiering inside the service: ``TIER_INTERVAL_S`` moves old outputs to S3, a
round per tenant."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import anyio
from dishka import AsyncContainer

from application.use_cases.object_storage import TierPayloads, TierReport
from domain.tenancy import TenantId
from interfaces import acting
from interfaces.background import periodic
from interfaces.settings import Settings
from interfaces.tenant_rounds import each_tenant

logger = logging.getLogger("storage_service.tiering")


async def run_tiering(
    container: AsyncContainer, settings: Settings, days: int, stopping: anyio.Event
) -> dict[TenantId, TierReport]:
    """One pass per tenant: outputs and errors in files older than ``days`` go to S3.

    Once ``stopping`` is set, the pass ends after the payload being moved.
    """

    async def tier(tenant: TenantId) -> TierReport:
        async with acting.system_scope(container, tenant) as request:
            use_case = await request.get(TierPayloads)
            report = await use_case.execute(timedelta(days=days), stop=stopping.is_set)
        logger.info(
            "tiering: %d payload(s) of tenant %s moved to S3 (%d bytes)",
            report.moved,
            tenant,
            report.moved_bytes,
            extra={
                "tenant": tenant,
                "moved": report.moved,
                "bytes": report.moved_bytes,
                "days": days,
            },
        )
        return report

    return await each_tenant("tiering", settings.access.tenants, tier, stopping)


@asynccontextmanager
async def tiering(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """While the app runs: a tiering pass at start and every ``TIER_INTERVAL_S`` (if set)."""
    days = settings.tiering.after_days
    if settings.tiering.interval_s is None or days is None:
        yield
        return

    async def round_(stopping: anyio.Event) -> None:
        await run_tiering(container, settings, days, stopping)

    async with periodic("tiering", settings.tiering.interval_s, round_):
        yield
