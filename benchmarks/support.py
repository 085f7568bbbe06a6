"""What the benchmarks share: a throwaway PostgreSQL database per run, and the service's
own role on it."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def driver_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def create_database(admin_url: str, prefix: str) -> str:
    """A new empty database ``<prefix>_<hex>`` on ``admin_url``'s server; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(driver_dsn(admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = driver_dsn(admin_url).rpartition("/")
    return f"{base}/{name}"


async def drop_database(admin_url: str, dsn: str) -> None:
    name = dsn.rpartition("/")[2]
    admin = await asyncpg.connect(driver_dsn(admin_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def throwaway_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """A new empty database for one run, dropped afterwards (also on failure)."""
    dsn = await create_database(admin_url, prefix)
    try:
        yield dsn
    finally:
        await drop_database(admin_url, dsn)


def env_count(name: str, default: int = 1_000_000) -> int:
    """A size from the environment (``BENCH_*_SIZE``), else ``default``."""
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def write_report(path: Path, run: Coroutine[Any, Any, str]) -> None:
    """Run a benchmark, write its Markdown report to ``path`` and show it."""
    report = asyncio.run(run)
    path.write_text(report)
    print(report)


@asynccontextmanager
async def service_role(admin_url: str, dsn: str) -> AsyncIterator[str]:
    """``dsn``'s database (migrated) reached as a role of the service's own, as the README
    deploys it: no superuser, no ``BYPASSRLS``, rights on rows only, so the service runs
    under row-level security (ADR 0032). Yields its DSN; the role is dropped afterwards."""
    role = f"bench_service_{uuid.uuid4().hex[:10]}"
    database = await asyncpg.connect(driver_dsn(dsn))
    try:
        for statement in (
            f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE",
            f"GRANT USAGE ON SCHEMA public TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
        ):
            await database.execute(statement)
    finally:
        await database.close()
    parts = urlsplit(driver_dsn(dsn))
    host = parts.netloc.rpartition("@")[2]
    try:
        yield urlunsplit(parts._replace(netloc=f"{role}@{host}"))
    finally:
        # The role's grants live in the database: it goes first (``WITH (FORCE)`` ends the
        # role's sessions; ``throwaway_database``'s own drop then finds nothing), then the role.
        await drop_database(admin_url, dsn)
        admin = await asyncpg.connect(driver_dsn(admin_url))
        try:
            await admin.execute(f"DROP ROLE IF EXISTS {role}")
        finally:
            await admin.close()
