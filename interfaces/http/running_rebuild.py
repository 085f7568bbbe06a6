"""The running registry made to agree with the database before the app serves, for each
tenant it serves (each tenant has an index of its own, ADR 0032)."""

import logging
from collections.abc import Sequence

import anyio
from dishka import AsyncContainer

from application.use_cases.running_evaluations import RebuildRunningRegistry
from domain.tenancy import TenantId
from interfaces import acting
from interfaces.tenant_rounds import each_tenant

logger = logging.getLogger("storage_service")


async def rebuild_running_registries(
    container: AsyncContainer, tenants: Sequence[TenantId]
) -> dict[TenantId, int]:
    """Each tenant's registry rebuilt; its number of active evaluations. A tenant whose
    rebuild fails is logged and left out: its registry falls back to the database."""

    async def rebuild(tenant: TenantId) -> int:
        async with acting.system_scope(container, tenant) as request:
            count = await (await request.get(RebuildRunningRegistry)).execute()
        logger.info(
            "running registry of tenant %s rebuilt with %d evaluation(s)",
            tenant,
            count,
            extra={"tenant": tenant, "evaluations": count},
        )
        return count

    return await each_tenant("running registry rebuild", tenants, rebuild, anyio.Event())
