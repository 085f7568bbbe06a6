"""Cache warming at start: each tenant's most recently changed records, loaded in the
background.

The app serves at once; the warm-up runs beside it and, failing or stopped at
shutdown, only costs the misses it would have saved. At shutdown it is asked to stop
and ends after the record it is filling (``interfaces.background.background``):
cancelled in the middle of its database read it could hang the event loop's end.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from dishka import AsyncContainer

from application.use_cases.warm_cache import WarmCache
from domain.tenancy import DEFAULT_TENANT, TenantId
from interfaces import acting
from interfaces.background import background
from interfaces.settings import Settings
from interfaces.tenant_rounds import each_tenant

logger = logging.getLogger("storage_service.cache")


async def warm_cache(
    container: AsyncContainer,
    top: int,
    stopping: anyio.Event | None = None,
    tenant: TenantId = DEFAULT_TENANT,
) -> int:
    """Load up to ``top`` of ``tenant``'s records into the record cache; the number loaded
    (0 on failure).

    Once ``stopping`` is set, the warm-up ends after the record being filled.
    """
    stopping = stopping or anyio.Event()
    if stopping.is_set():
        return 0
    try:
        async with acting.system_scope(container, tenant) as request:
            warm = await request.get(WarmCache)
            count = await warm.execute(top, stop=stopping.is_set)
    except Exception:  # the cache only fills on reads then; the service keeps serving
        logger.exception("cache warming failed for tenant %s", tenant, extra={"tenant": tenant})
        return 0
    if stopping.is_set():
        logger.info("cache warming stopped at shutdown after %d record(s)", count)
        return count
    logger.info(
        "cache warmed with %d record(s) of tenant %s",
        count,
        tenant,
        extra={"records": count, "tenant": tenant},
    )
    return count


async def warm_tenants(
    container: AsyncContainer, settings: Settings, stopping: anyio.Event
) -> dict[TenantId, int]:
    """Each served tenant's ``CACHE_WARM_COUNT`` most recent records, one tenant after
    another; the number loaded per tenant."""
    top = settings.cache.warm_count

    async def warm(tenant: TenantId) -> int:
        return await warm_cache(container, top, stopping, tenant)

    return await each_tenant("cache warming", settings.access.tenants, warm, stopping)


@asynccontextmanager
async def cache_warming(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """While the app starts serving: one background warm-up, when caching and warming are on."""
    if not (settings.cache.enabled and settings.cache.warm_on_start):
        yield
        return

    async def run(stopping: anyio.Event) -> None:
        await warm_tenants(container, settings, stopping)

    async with background("cache warming", run):
        yield
