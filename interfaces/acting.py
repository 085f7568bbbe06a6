"""Who the current request or command acts as, for the audit trail.

The HTTP guard sets it for each request and the CLI for each command; the
container reads it when a use case needs an ``AuditContext``. A context variable
rather than a dishka context value, because background work (retention, start-up
repairs) opens container scopes that no request or command started.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar

import msgspec
from dishka import AsyncContainer

from domain.audit import AuditContext
from domain.tenancy import TenantId

SYSTEM = AuditContext(actor="system")


def system_for(tenant: TenantId) -> AuditContext:
    """Work no caller started (a job, a start-up repair) acting for ``tenant``."""
    return AuditContext(actor=SYSTEM.actor, tenant=tenant)


class MissingTenantError(RuntimeError):
    """Work that no caller started asked for the tenant without naming one (a bug: on
    PostgreSQL it would see no rows; ADR 0032)."""

    def __init__(self, actor: str) -> None:
        super().__init__(f"{actor!r} acts for no tenant: name one with acting_as(...)")


_current: ContextVar[AuditContext] = ContextVar("acting_as", default=SYSTEM)


def current() -> AuditContext:
    return _current.get()


def act_as(context: AuditContext) -> None:
    """Set the actor for the rest of this task (a request's handling)."""
    _current.set(context)


@contextmanager
def acting_as(context: AuditContext) -> Iterator[None]:
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


@contextmanager
def acting_for(tenant: TenantId) -> Iterator[None]:
    """The current actor, acting for ``tenant`` (a restore whose tree holds several)."""
    with acting_as(msgspec.structs.replace(current(), tenant=tenant)):
        yield


@asynccontextmanager
async def system_scope(
    container: AsyncContainer, tenant: TenantId
) -> AsyncIterator[AsyncContainer]:
    """A request scope for work no caller started (a job, a start-up repair, a change
    hub's reads), acting as the system for ``tenant`` (a job runs a round per tenant)."""
    with acting_as(system_for(tenant)):
        async with container() as scope:
            yield scope
