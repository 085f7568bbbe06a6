"""Real PostgreSQL and Redis for the tests: found by URL, never mocked.

In CI (``CI`` set) a missing server fails the test loudly; on a laptop it
skips with a one-line reason.
"""

import asyncio
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = bool(os.environ.get("CI"))

T = TypeVar("T")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> None:
    """Skip (laptop) or fail (CI) when the server behind ``url`` does not answer."""
    if _reachable(url, default_port):
        return
    message = f"{name} is not reachable at {url}"
    if IN_CI:
        pytest.fail(f"{message}; CI must not skip it", pytrace=False)
    pytest.skip(message)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def run_blocking(work: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(work)`` from sync code, also under a running event loop (a session
    fixture first asked for from an async fixture or test): then on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


def _admin_dsn() -> str:
    return TEST_DATABASE_URL.replace("postgresql+asyncpg://", "postgresql://")


def _execute(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(_admin_dsn())
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    run_blocking(run())


def _execute_in(database: str, statements: list[str]) -> None:
    import asyncpg

    async def run() -> None:
        url = _with_database(TEST_DATABASE_URL, database)
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    run_blocking(run())


def _drop_database(name: str) -> None:
    _execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def temporary_postgres_database(template: str | None = None) -> Iterator[str]:
    """Create a database on the test server (empty, or a copy of ``template``); drop it
    afterwards."""
    require_service("PostgreSQL", TEST_DATABASE_URL, 5432)
    name = f"crucible_test_{uuid.uuid4().hex[:12]}"
    _execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield _with_database(TEST_DATABASE_URL, name)
    finally:
        _DROPS.put(name)


class _Drops:
    """Drops databases in a thread of its own: a DROP waits on the server's disk (up to a
    second or more under load), and no test needs to wait for its database to go."""

    def __init__(self) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, name: str) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="db-drops", daemon=True)
                self._thread.start()
        self._queue.put(name)

    def _run(self) -> None:
        while (name := self._queue.get()) is not None:
            with suppress(Exception):  # a leftover database harms no test; the run goes on
                _drop_database(name)

    def finish(self) -> None:
        """Wait for every drop asked for so far."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=120)


_DROPS = _Drops()
# This process's migrated template databases: PostgreSQL's, and SQLite's file.
_templates: dict[str, str] = {}
_template_lock = threading.Lock()


def _postgres_template() -> str:
    """A database migrated once per process to the newest schema, copied for each test.

    ``CREATE DATABASE ... TEMPLATE`` copies the schema in a fraction of the time the
    migrations take; the copy is a new database (its own OID, so no statistics of another
    test's either). One template per process: PostgreSQL refuses to copy a database
    another session is connected to, and each xdist worker migrates its own.
    """
    from infrastructure.sql.migrate import upgrade

    with _template_lock:
        if "postgres" not in _templates:
            require_service("PostgreSQL", TEST_DATABASE_URL, 5432)
            name = f"crucible_template_{uuid.uuid4().hex[:12]}"
            _execute(f'CREATE DATABASE "{name}"')
            upgrade(_with_database(TEST_DATABASE_URL, name))  # NullPool: no session stays
            _templates["postgres"] = name
        return _templates["postgres"]


@contextmanager
def migrated_postgres_database() -> Iterator[str]:
    """A database of its own at the newest schema: a copy of this process's template."""
    with temporary_postgres_database(template=_postgres_template()) as url:
        yield url


class RoleUrls(NamedTuple):
    """One database reached as the role that owns its tables and as the service's role."""

    owner: str
    service: str


def beneath_row_security(url: str) -> str:
    """``url``'s database reached as the test server's own role, a superuser: what a test
    inspects or plants beneath the service, which row-level security would hide. SQLite's
    URL as it is: it has no roles."""
    if not url.startswith("postgresql"):
        return url
    return as_role(url, urlsplit(TEST_DATABASE_URL).username or "postgres")


def as_role(url: str, role: str) -> str:
    """``url`` reached as ``role`` (no password: the test server trusts its clients)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rsplit('@', 1)[-1]}"))


def _owned_template() -> tuple[str, str, str]:
    """A template migrated once per process by an owner role of its own (no superuser, no
    ``BYPASSRLS``), with a service role that may only read and write rows: the template's
    name and the two roles (ADR 0032, decision 4). Row-level security binds both."""
    from infrastructure.sql.migrate import upgrade
    from tests.row_security import service_role_statements

    with _template_lock:
        if "owned" not in _templates:
            require_service("PostgreSQL", TEST_DATABASE_URL, 5432)
            tag = uuid.uuid4().hex[:12]
            name, owner, service = (
                f"crucible_{kind}_{tag}" for kind in ("owned", "owner", "service")
            )
            _execute(f"CREATE ROLE {owner} LOGIN NOSUPERUSER NOBYPASSRLS")
            _execute(f'CREATE DATABASE "{name}" OWNER {owner}')
            url = _with_database(TEST_DATABASE_URL, name)
            upgrade(as_role(url, owner))
            _execute_in(name, service_role_statements(service))
            _templates["owned"] = name
            _templates["owner"], _templates["service"] = owner, service
        return _templates["owned"], _templates["owner"], _templates["service"]


@contextmanager
def owned_postgres_database() -> Iterator[RoleUrls]:
    """A database of its own at the newest schema, its tables owned by a role that is no
    superuser, reached as that owner and as the service's role: under row-level security
    both see only the rows of the tenant they set."""
    template, owner, service = _owned_template()
    with temporary_postgres_database(template=template) as url:
        yield RoleUrls(owner=as_role(url, owner), service=as_role(url, service))


def migrated_sqlite(path: Path) -> str:
    """A SQLite database at ``path`` at the newest schema; returns its URL.

    A copy of a file this process migrated once: the same bytes the migrations write
    (journal mode ``delete``, so the one file is the whole database).
    """
    from infrastructure.sql.migrate import upgrade

    with _template_lock:
        if "sqlite" not in _templates:
            template = Path(tempfile.mkdtemp(prefix="crucible-sqlite-")) / "template.db"
            upgrade(f"sqlite+aiosqlite:///{template}")
            _templates["sqlite"] = str(template)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_templates["sqlite"], path)
    return f"sqlite+aiosqlite:///{path}"


def drop_templates() -> None:
    """At the end of the run: wait for the drops, then remove this process's templates."""
    _DROPS.finish()
    with _template_lock:
        postgres, sqlite = _templates.pop("postgres", None), _templates.pop("sqlite", None)
        owned = [_templates.pop(kind, None) for kind in ("owned", "service", "owner")]
    if postgres is not None:
        _drop_database(postgres)
    database, *roles = owned
    if database is not None:
        _drop_database(database)
        for role in roles:  # their databases are gone: nothing depends on them any more
            with suppress(Exception):  # a leftover role harms no test
                _execute(f"DROP ROLE IF EXISTS {role}")
    if sqlite is not None:
        shutil.rmtree(Path(sqlite).parent, ignore_errors=True)


def redis_test_prefix() -> str:
    """A key prefix of its own for one test, so tests never see each other's keys."""
    require_service("Redis", TEST_REDIS_URL, 6379)
    return f"test:{uuid.uuid4().hex[:10]}:"


@contextmanager
def redis_test_keys() -> Iterator[str]:
    """A ``redis_test_prefix`` whose keys are dropped afterwards."""
    prefix = redis_test_prefix()
    try:
        yield prefix
    finally:
        run_blocking(drop_redis_keys(prefix))


async def drop_redis_keys(prefix: str, url: str = TEST_REDIS_URL) -> None:
    """Delete every key a test wrote under its own prefix."""
    import redis.asyncio as redis

    await drop_keys_of(redis.Redis.from_url(url), prefix)


async def drop_keys_of(client: Any, prefix: str) -> None:
    """Delete the keys under ``prefix`` through ``client`` (Redis or Redis Cluster), then close it."""
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def stop_process(process: "subprocess.Popen[bytes]", timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port in a thread; yields the base URL.

    Unlike the test client, requests really run concurrently, as in production.
    """
    import threading
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port_pair(offset: int) -> tuple[int, int]:
    """Two free loopback ports ``p`` and ``p + offset`` (servers that derive a second port)."""
    import random

    for _ in range(200):
        port = random.randint(20_000, 65_535 - offset)
        if _bindable(port) and _bindable(port + offset):
            return port, port + offset
    raise RuntimeError(f"no pair of free loopback ports {offset} apart")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_server(env: dict[str, str], log_path: Path) -> tuple[Any, str]:
    """Start ``storage-service serve`` as its own process; returns it and its URL once
    /health answers (the start fails the test with the server's log otherwise).

    ``env`` is the whole environment (settings included); HOST and PORT are set here.
    The caller stops the process.
    """
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port)}
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=20)
            pytest.fail("server did not start:\n" + log_path.read_text(errors="replace"))
        time.sleep(0.2)


@contextmanager
def serve_subprocess(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, int]]:
    """Run ``storage-service serve`` as its own process; yields its URL and pid."""
    process, base = start_server(env, log_path)
    try:
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)
