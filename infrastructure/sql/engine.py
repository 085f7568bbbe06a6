"""Engine and session factories, tuned per database.

PostgreSQL: a bounded pool with pre-ping, a connect timeout and a server-side
statement timeout, so a stuck query cannot hold a request forever.
SQLite: WAL (readers never block the writer), a busy timeout (writers queue
instead of failing at once), enforced foreign keys and ``synchronous=FULL``
(a commit is on disk before the 2xx).
"""

from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from application.search import TextSearch
from infrastructure.sql.tenancy import TenantSession

SQLITE_BUSY_TIMEOUT_MS = 30_000


class DatabaseSettings(Protocol):
    """The settings the engine needs; ``interfaces.settings.DatabaseSettings`` satisfies it."""

    @property
    def url(self) -> str: ...

    @property
    def pool_size(self) -> int: ...

    @property
    def statement_timeout_ms(self) -> int: ...

    @property
    def connect_timeout_s(self) -> float: ...


def async_database_url(url: str) -> str:
    """Accept ``postgresql://``/``postgres://``/``sqlite:///`` and pick the async drivers."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or ``None`` for an in-memory database."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database)


def ensure_sqlite_directory(database_url: str) -> None:
    """Create the parent directory of a SQLite file so a fresh checkout just runs."""
    path = sqlite_file(make_url(async_database_url(database_url)))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("regexp", 2, regexp, deterministic=True)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        # Deleted rows are overwritten with zeros, not left in free pages: an erased
        # subject's data is gone from the file (ADR 0029).
        cursor.execute("PRAGMA secure_delete=ON")
    finally:
        cursor.close()


def regexp(pattern: str, text: str | None) -> bool:
    """SQLite's ``REGEXP`` with RE2, in place of the dialect's own (Python's ``re``, which
    backtracks: a hostile pattern could hold a connection for minutes)."""
    return TextSearch(pattern, regex=True).find(text) is not None


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    """The application's engine for ``settings.url``."""
    url = make_url(async_database_url(settings.url))
    if url.get_backend_name() == "sqlite":
        ensure_sqlite_directory(str(url))
        engine = _create_async_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_pre_ping=True,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return _create_async_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_timeout=settings.connect_timeout_s,
        pool_pre_ping=True,
        connect_args={
            "timeout": settings.connect_timeout_s,
            "server_settings": {
                "statement_timeout": str(settings.statement_timeout_ms),
                "application_name": "crucible-storage-service",
            },
        },
    )


def create_session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded values after commit (responses are built after it); on
    PostgreSQL each transaction sets the session's tenant first (``TenantSession``)."""
    if engine.dialect.name == "postgresql":
        return async_sessionmaker(
            engine, expire_on_commit=False, autoflush=False, sync_session_class=TenantSession
        )
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
