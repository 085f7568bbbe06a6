"""Whose rows a session's statements read and write (ADR 0032).

The tenant travels with the request's session (``session.info``), set once where the
session is made (the request's ``TenantId``); every SQLAlchemy adapter names it in each
statement, the only guarantee on SQLite. A session bound to no tenant reads and writes
nothing: asking it for its tenant is an error.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from domain.tenancy import TenantId

_KEY = "tenant"


def bind_tenant(session: AsyncSession, tenant: TenantId) -> AsyncSession:
    """``session``, its statements from now on ``tenant``'s."""
    session.info[_KEY] = tenant
    return session


def session_tenant(session: AsyncSession) -> TenantId:
    """The tenant ``session``'s statements read and write."""
    tenant: TenantId | None = session.info.get(_KEY)
    if tenant is None:
        raise RuntimeError("the session is bound to no tenant (bind_tenant)")
    return tenant
