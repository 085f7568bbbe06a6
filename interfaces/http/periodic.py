"""Background jobs that run every so often for as long as the app runs."""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

logger = logging.getLogger("storage_service.periodic")


async def _every(name: str, interval_s: float, job: Callable[[], Awaitable[None]]) -> None:
    while True:
        try:
            await job()
        except Exception:  # the next round tries again; the service keeps serving
            logger.exception("%s failed", name)
        await anyio.sleep(interval_s)


@asynccontextmanager
async def periodic(
    name: str, interval_s: float, job: Callable[[], Awaitable[None]]
) -> AsyncIterator[None]:
    """Run ``job`` at once and then every ``interval_s`` seconds until the app stops."""
    async with anyio.create_task_group() as group:
        group.start_soon(_every, name, interval_s, job)
        try:
            yield
        finally:
            group.cancel_scope.cancel()
