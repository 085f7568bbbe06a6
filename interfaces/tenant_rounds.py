"""A job's round for each tenant the deployment serves, one after another (ADR 0032).

Under row-level security a scope sees one tenant's rows, so a job that should cover the
deployment acts for each tenant in turn, in a request scope of that tenant's
(``acting.system_scope``). A tenant with nothing to do costs its round's first query.
One tenant's failure is logged and the others still get their round.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio

from domain.tenancy import TenantId

logger = logging.getLogger("storage_service.periodic")
T = TypeVar("T")


async def each_tenant(
    job: str,
    tenants: Sequence[TenantId],
    round_: Callable[[TenantId], Awaitable[T]],
    stopping: anyio.Event,
) -> dict[TenantId, T]:
    """``round_(tenant)`` for each of ``tenants`` until ``stopping``; what each returned
    (a tenant whose round failed, or was not reached, is absent)."""
    done: dict[TenantId, T] = {}
    for tenant in tenants:
        if stopping.is_set():
            break
        try:
            done[tenant] = await round_(tenant)
        except Exception:  # the next tenant's round, and this one's next, still run
            logger.exception("%s failed for tenant %s", job, tenant, extra={"tenant": tenant})
    return done
