"""Run the Alembic migrations programmatically.

``upgrade``/``downgrade`` are synchronous: Alembic's env.py starts an async
engine with ``asyncio.run`` in the calling thread, so call them from sync code
or a worker thread (``anyio.to_thread.run_sync``), never from inside a running
event loop. Code that already holds an ``AsyncEngine`` uses ``upgrade_engine``.
"""

import argparse
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from infrastructure.sql.engine import async_database_url, ensure_sqlite_directory

SCRIPT_LOCATION = Path(migrations.__file__).resolve().parent


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if database_url is not None:
        url = async_database_url(database_url)
        ensure_sqlite_directory(url)
        config.attributes["database_url"] = url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def _upgrade_on(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade through an existing engine; safe inside a running event loop."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_on, revision)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Migrate the storage service database.")
    parser.add_argument("action", choices=["upgrade", "downgrade"])
    parser.add_argument("revision", nargs="?", default=None)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("set DATABASE_URL or pass --database-url")
    if args.action == "upgrade":
        upgrade(args.database_url, args.revision or "head")
    else:
        downgrade(args.database_url, args.revision or "-1")


if __name__ == "__main__":
    main()
