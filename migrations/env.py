"""Alembic environment for SQLite (aiosqlite) and PostgreSQL (asyncpg).

The URL comes from ``config.attributes["database_url"]`` (set by
``infrastructure.sql.migrate``), else ``sqlalchemy.url``, else ``DATABASE_URL``.
A caller that already holds a connection passes it as
``config.attributes["connection"]``; otherwise an async engine is started with
``asyncio.run`` in the calling thread, which therefore must not run an event loop.
``render_as_batch`` lets later revisions alter SQLite tables by copy-and-move.
"""

import asyncio
import os
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from infrastructure.sql.engine import async_database_url, ensure_sqlite_directory
from infrastructure.sql.tables import metadata

config = context.config


def _database_url() -> str:
    url = (
        config.attributes.get("database_url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("DATABASE_URL")
    )
    if not url:
        raise RuntimeError("no database URL: set DATABASE_URL or pass one to migrate.upgrade()")
    return async_database_url(str(url))


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
        compare_server_default=False,
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(url=_database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run_with(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_with)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    url = _database_url()
    ensure_sqlite_directory(url)
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
