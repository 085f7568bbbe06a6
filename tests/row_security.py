"""Row-level security on a test database, as ADR 0032 decides it (decisions 4 and 5).

Every table with a ``tenant_id`` gets the policy, ``ENABLE``d and ``FORCE``d, and the
service connects as a role of its own that owns nothing, is no superuser, has no
``BYPASSRLS`` and may only read and write rows: with no tenant set it sees no row. The
statements are the ones a migration will run; here they are put on a migrated copy and
the role is made for the run and dropped after it.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from infrastructure.postgres.pool import driver_dsn
from infrastructure.sql.tables import ALL_TABLES
from infrastructure.sql.tenancy import SETTING
from tests.services import run_blocking

TENANT_TABLES = tuple(table.name for table in ALL_TABLES if "tenant_id" in table.c)
_MATCHES = f"tenant_id = current_setting('{SETTING}', true)"


def policy_statements() -> list[str]:
    """``ENABLE`` and ``FORCE`` row-level security and the policy on every tenant table."""
    statements: list[str] = []
    for table in TENANT_TABLES:
        statements += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"CREATE POLICY tenant_isolation ON {table} USING ({_MATCHES}) WITH CHECK ({_MATCHES})",
        ]
    return statements


def service_role_statements(role: str) -> list[str]:
    """A login role with rights on rows only (and the sequences of identity columns)."""
    return [
        f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
    ]


async def _run(url: str, statements: list[str]) -> None:
    connection = await asyncpg.connect(driver_dsn(url))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _as(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


@contextmanager
def row_secured(url: str) -> Iterator[str]:
    """The database at ``url`` (migrated, reached as its owner or a superuser) under
    row-level security; yields the URL of the service's role on it, dropped afterwards."""
    role = f"crucible_service_{uuid.uuid4().hex[:10]}"
    run_blocking(_run(url, policy_statements() + service_role_statements(role)))
    try:
        yield _as(url, role)
    finally:
        run_blocking(
            _run(
                url,
                [
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE usename = '{role}'",
                    f"DROP OWNED BY {role}",
                    f"DROP ROLE {role}",
                ],
            )
        )


def emptied(owner_url: str, *tables: str) -> None:
    """Empty ``tables`` as their owner: the service's role sees its tenant's rows only,
    and may not truncate."""
    run_blocking(_run(owner_url, [f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"]))
