"""Whose rows a session's statements read and write (ADR 0032).

The tenant travels with the request's session (``session.info``), set once where the
session is made (the request's ``TenantId``); every SQLAlchemy adapter names it in each
statement, the only guarantee on SQLite. A session bound to no tenant reads and writes
nothing: asking it for its tenant is an error.

On PostgreSQL a session's every transaction also sets it where row-level security reads
it (``TenantSession``): one statement as the transaction begins, local to it, so the
pooled connection keeps nothing afterwards.
"""

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from domain.tenancy import TenantId

# The setting the policies compare ``tenant_id`` with.
SETTING = "crucible.tenant"
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


class TenantSession(Session):
    """A PostgreSQL session whose transactions set its tenant (``bind_tenant``) first.

    A session bound to none sets nothing: under row-level security it sees no rows.
    """


@event.listens_for(TenantSession, "after_begin")
def _set_tenant(session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
    tenant: TenantId | None = session.info.get(_KEY)
    if tenant is not None:
        connection.execute(sa.select(sa.func.set_config(SETTING, tenant, sa.true())))
