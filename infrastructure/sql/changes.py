"""The change feed in SQL (SQLAlchemy Core on the request's session; SQLite's, mainly).

SQLite runs one writing transaction at a time, so ids are given out in commit order and
``txid`` stays 0. On PostgreSQL the same statement also keeps to the entries of
transactions that have all ended (``infrastructure.postgres.changes`` says why).
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from application.ports.change_feed import ChangeFeed, ChangePage, ChangeQuery
from domain.changes import Change, ChangeCursor, actions_of, change_of
from infrastructure.sql.audit import entry_from_row
from infrastructure.sql.dialect import committed_changes
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.rows import Row
from infrastructure.sql.tables import audit_log
from infrastructure.sql.tenancy import session_tenant


def page_of(rows: Sequence[Row], query: ChangeQuery) -> ChangePage:
    """The changes of ``rows`` (read in feed order) that ``query`` asks for."""
    changes: list[Change] = []
    reached: ChangeCursor | None = None
    for row in rows:
        reached = ChangeCursor(row["txid"], row["id"])
        change = change_of(entry_from_row(row), reached)
        if change is not None and (not query.kinds or change.kind in query.kinds):
            changes.append(change)
    return ChangePage(changes=changes, reached=reached, full=len(rows) == query.limit)


class SqlChangeFeed(ChangeFeed):
    """``ChangeFeed`` on ``audit_log`` in ``(txid, id)`` order."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def read(self, query: ChangeQuery) -> ChangePage:
        c = audit_log.c
        conditions = [
            c.tenant_id == session_tenant(self._session),
            c.evaluation_id.is_not(None),
            *committed_changes(self._session, c.txid),
        ]
        if query.after is not None:
            after = sa.tuple_(query.after.transaction, query.after.sequence)
            conditions.append(sa.tuple_(c.txid, c.id) > after)
        if query.since is not None:
            conditions.append(c.at >= query.since)
        if query.evaluation_id is not None:
            conditions.append(c.evaluation_id == query.evaluation_id)
        if query.kinds:
            conditions.append(c.action.in_(sorted(a.value for a in actions_of(query.kinds))))
        statement = (
            sa.select(audit_log).where(*conditions).order_by(c.txid, c.id).limit(query.limit)
        )
        with translate_errors():
            rows = (await self._session.execute(statement)).mappings().all()
        return page_of(rows, query)

    async def recorded_at(self, cursor: ChangeCursor) -> datetime | None:
        c = audit_log.c
        statement = sa.select(c.at).where(
            c.tenant_id == session_tenant(self._session),
            c.id == cursor.sequence,
            c.txid == cursor.transaction,
        )
        with translate_errors():
            at: datetime | None = (await self._session.execute(statement)).scalar()
        return at

    async def latest(self) -> ChangeCursor | None:
        c = audit_log.c
        statement = (
            sa.select(c.txid, c.id)
            .where(
                c.tenant_id == session_tenant(self._session),
                *committed_changes(self._session, c.txid),
            )
            .order_by(c.txid.desc(), c.id.desc())
            .limit(1)
        )
        with translate_errors():
            row = (await self._session.execute(statement)).first()
        return None if row is None else ChangeCursor(row.txid, row.id)
