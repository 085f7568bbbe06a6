"""Cache warming at start: the most recently changed records, loaded in the background.

The app serves at once; the warm-up runs beside it and, failing or cancelled at
shutdown, only costs the misses it would have saved.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from dishka import AsyncContainer

from application.use_cases.warm_cache import WarmCache
from interfaces.settings import Settings

logger = logging.getLogger("storage_service.cache")


async def warm_cache(container: AsyncContainer, top: int) -> int:
    """Load up to ``top`` records into the record cache; the number loaded (0 on failure)."""
    try:
        async with container() as request:
            warm = await request.get(WarmCache)
            count = await warm.execute(top)
    except Exception:  # the cache only fills on reads then; the service keeps serving
        logger.exception("cache warming failed")
        return 0
    logger.info("cache warmed with %d record(s)", count, extra={"records": count})
    return count


@asynccontextmanager
async def cache_warming(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """While the app starts serving: one background warm-up, when caching and warming are on."""
    if not (settings.enable_caching and settings.cache_warm_on_start):
        yield
        return
    async with anyio.create_task_group() as group:
        group.start_soon(warm_cache, container, settings.cache_warm_count)
        try:
            yield
        finally:
            group.cancel_scope.cancel()
