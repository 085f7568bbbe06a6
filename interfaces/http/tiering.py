"""Optional tiering inside the service: ``TIER_INTERVAL_S`` moves old outputs to S3."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial

import anyio
from dishka import AsyncContainer

from application.use_cases.object_storage import TierPayloads
from interfaces import acting
from interfaces.background import periodic
from interfaces.settings import Settings

logger = logging.getLogger("storage_service.tiering")


async def run_tiering(container: AsyncContainer, days: int, stopping: anyio.Event) -> None:
    """One pass: outputs and errors in files older than ``days`` go to S3.

    Once ``stopping`` is set, the pass ends after the payload being moved.
    """
    async with acting.system_scope(container) as request:
        tier = await request.get(TierPayloads)
        report = await tier.execute(timedelta(days=days), stop=stopping.is_set)
    logger.info(
        "tiering: %d payload(s) moved to S3 (%d bytes)",
        report.moved,
        report.moved_bytes,
        extra={"moved": report.moved, "bytes": report.moved_bytes, "days": days},
    )


@asynccontextmanager
async def tiering(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """While the app runs: a tiering pass at start and every ``TIER_INTERVAL_S`` (if set)."""
    days = settings.tiering.after_days
    if settings.tiering.interval_s is None or days is None:
        yield
        return
    async with periodic(
        "tiering", settings.tiering.interval_s, partial(run_tiering, container, days)
    ):
        yield
