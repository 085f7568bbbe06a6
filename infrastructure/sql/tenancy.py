"""Whose rows a session's statements read and write (ADR 0032).

The tenant travels with the request's session (``session.info``), set once where the
session is made; every SQLAlchemy adapter names it in each statement, the only guarantee
on SQLite. Until the request's tenant is bound there, a session is the default tenant's.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from domain.tenancy import DEFAULT_TENANT, TenantId

_KEY = "tenant"


def bind_tenant(session: AsyncSession, tenant: TenantId) -> AsyncSession:
    """``session``, its statements from now on ``tenant``'s."""
    session.info[_KEY] = tenant
    return session


def session_tenant(session: AsyncSession) -> TenantId:
    """The tenant ``session``'s statements read and write."""
    tenant: TenantId = session.info.get(_KEY, DEFAULT_TENANT)
    return tenant
