"""The service's own role on a test database, as ADR 0032 decides it (decision 4).

Migration 0016 puts the tables under row-level security (``ENABLE``d, ``FORCE``d, the
policy ``tenant_isolation``); the superuser that migrates the test databases bypasses it.
The service connects as a role of its own that owns nothing, is no superuser, has no
``BYPASSRLS`` and may only read and write rows: with no tenant set it sees no row. The
role is made for the run and dropped after it.
"""

import importlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from infrastructure.postgres.pool import driver_dsn
from tests.services import as_role, run_blocking


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


@contextmanager
def row_secured(url: str) -> Iterator[str]:
    """The database at ``url`` (migrated, reached as its owner or a superuser), reached
    as the service's role instead: yields its URL; the role is dropped afterwards."""
    role = f"crucible_service_{uuid.uuid4().hex[:10]}"
    run_blocking(_run(url, service_role_statements(role)))
    try:
        yield as_role(url, role)
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


# The role that owns the lookup functions (ADR 0032, decision 8): the cluster's, as a
# deployment's superuser makes it once; never dropped, since every database migrated
# while it exists gives it its functions.
LOOKUP_ROLE = "crucible_lookup"
_LOOKUP = importlib.import_module("migrations.versions.0016_row_level_security")


def functions_owned_by_lookup(url: str) -> None:
    """``crucible_lookup`` made if missing, and given the lookup functions of the database
    at ``url`` (a superuser's) by migration 0016's own statement."""
    make = (
        f"DO $$ BEGIN CREATE ROLE {LOOKUP_ROLE} NOLOGIN BYPASSRLS; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )
    run_blocking(_run(url, [make, _LOOKUP.TO_LOOKUP]))
