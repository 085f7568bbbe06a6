"""The asyncpg pool: timeouts from settings, JSONB through msgspec, no reset round trip."""

from typing import Any

import asyncpg
import msgspec

from infrastructure.sql.engine import DatabaseSettings

APPLICATION_NAME = "crucible-storage-service"


def driver_dsn(database_url: str) -> str:
    """The libpq form asyncpg expects, from any PostgreSQL URL the settings accept."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql://" + database_url[len(prefix) :]
    return database_url


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode("utf-8")


async def _init_connection(connection: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog"
        )


async def _keep_session_state(_connection: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release: the adapters set no session state.

    They never ``SET``, ``LISTEN``, hold advisory locks or open cursors, and every
    transaction is committed or rolled back before release, so the default
    ``RESET ALL; UNLISTEN *; ...`` would be a round trip per request for nothing.
    """


async def create_pool(settings: DatabaseSettings) -> asyncpg.Pool:
    """A pool of up to ``pool_size`` connections with the server-side statement timeout.

    It opens no connection when it is made (``min_size=0``): the pool is built when a
    request first needs it, and a database that is down then must fail that request's
    first statement (which failover turns into a journaled write), not the building
    of its dependencies.
    """
    pool: asyncpg.Pool = await asyncpg.create_pool(
        driver_dsn(settings.url),
        min_size=0,
        max_size=settings.pool_size,
        timeout=settings.connect_timeout_s,
        init=_init_connection,
        reset=_keep_session_state,
        server_settings={
            "statement_timeout": str(settings.statement_timeout_ms),
            "application_name": APPLICATION_NAME,
        },
    )
    return pool
