"""The one place that picks dialect-specific SQL: conflict-ignoring inserts, UTC days,
the change feed's visibility."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_name(session: AsyncSession) -> str:
    bind = session.bind
    if bind is None:  # pragma: no cover - sessions are always bound by the factory
        raise RuntimeError("the session is not bound to an engine")
    return bind.dialect.name


def insert_for(session: AsyncSession, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` that offers ``on_conflict_do_nothing`` for the session's database."""
    if dialect_name(session) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def utc_day(session: AsyncSession, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The UTC calendar day of a timestamp column (``date`` on PostgreSQL, text on SQLite)."""
    if dialect_name(session) == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    # SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'; date() takes its day.
    return sa.func.date(column)


def utc_hour(session: AsyncSession, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The start of the UTC clock hour of a timestamp column (naive ``timestamp`` on
    PostgreSQL, text ``'YYYY-MM-DD HH:00:00'`` on SQLite)."""
    if dialect_name(session) == "postgresql":
        return sa.func.date_trunc("hour", sa.func.timezone("UTC", column))
    return sa.func.strftime("%Y-%m-%d %H:00:00", column)


def committed_changes(
    session: AsyncSession, txid: sa.ColumnElement[int]
) -> list[sa.ColumnElement[bool]]:
    """Conditions that keep a feed read to the audit entries whose order is final.

    On PostgreSQL: those of transactions older than every one still running (a running
    transaction could still commit an entry in front of them). SQLite writes one
    transaction at a time, so every entry it shows is final.
    """
    if dialect_name(session) == "postgresql":
        xmin = sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot())
        return [txid < sa.cast(sa.cast(xmin, sa.Text), sa.BigInteger)]
    return []
