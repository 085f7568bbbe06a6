"""A throwaway PostgreSQL for fault tests: stopping it harms nothing else.

``initdb`` + ``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` (or ``PATH``) on a
free loopback port, in a temporary directory of its own, with trust auth, the
unix socket inside that directory and ``fsync`` on (the tests check
durability). As root the binaries run as the ``postgres`` OS user (PostgreSQL
refuses to run as root) through ``runuser`` (or ``su``), and the cluster lives
under the system temporary directory, because pytest's ``tmp_path`` sits in a
tree only root may enter; its server log is copied into ``tmp_path`` at the
end. Without the binaries the tests skip on a laptop and fail in CI.

    with throwaway_postgres(tmp_path) as pg:
        pg.url              # postgresql+asyncpg://postgres@127.0.0.1:<port>/postgres
        pg.stop()           # pg_ctl -m immediate: a crash, as far as clients can tell
        pg.start()          # crash recovery, same port, same data

    with throwaway_postgres(tmp_path, {"max_connections": "8"}) as pg:  # other settings
        ...
"""

import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from tests.services import IN_CI, free_port

OS_USER = "postgres"
START_TIMEOUT_S = 30
BIND_ATTEMPTS = 3
StopMode = Literal["smart", "fast", "immediate"]


def _skip_or_fail(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}; CI must not skip it", pytrace=False)
    pytest.skip(message)


def _version_key(bindir: Path) -> tuple[int, ...]:
    version = bindir.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit()) or (0,)


def find_postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl, else ``PATH``."""
    override = os.environ.get("PG_BINDIR")
    candidates = [Path(override)] if override else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _runner() -> list[str]:
    """The prefix that runs a command as the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", OS_USER, "--"]
    return []  # ``su`` is used instead (see ``PgServer._command``)


def require_postgres() -> Path:
    """The binaries' directory, or a skip (laptop) / failure (CI) saying what is missing."""
    bindir = find_postgres_bindir()
    if bindir is None:
        _skip_or_fail("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        raise AssertionError("unreachable")  # pragma: no cover
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            _skip_or_fail(f"running as root needs an OS user {OS_USER!r} to run PostgreSQL")
        if not (shutil.which("runuser") or shutil.which("su")):
            _skip_or_fail("running as root needs runuser or su to run PostgreSQL")
    return bindir


@dataclass
class PgServer:
    """One PostgreSQL cluster in ``directory`` (``data/``, ``socket/``, ``postgres.log``)."""

    directory: Path
    port: int
    bindir: Path
    database: str = "postgres"  # ``dataclasses.replace`` it to name another of the cluster
    # postgresql.conf settings over the defaults of ``init`` (``{"max_connections": "8"}``).
    overrides: Mapping[str, str] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory / "socket"

    @property
    def log(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def url(self) -> str:
        """The service's ``DATABASE_URL`` form."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        """The same for ``asyncpg.connect``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _command(self, *args: str) -> list[str]:
        if os.geteuid() != 0:
            return list(args)
        prefix = _runner()
        if prefix:
            return [*prefix, *args]
        return ["su", OS_USER, "-s", "/bin/sh", "-c", shlex.join(args)]

    def _run(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> "subprocess.CompletedProcess[str]":
        # The child's working directory is ours: postgres may not enter the caller's.
        result = subprocess.run(
            self._command(*args),
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n{self.log_tail()}"
            )
        return result

    def _tool(self, name: str) -> str:
        return str(self.bindir / name)

    def init(self) -> None:
        """``initdb`` (no sync: the cluster is new and throwaway) and the run-time settings."""
        self._run("mkdir", "-m", "0700", str(self.socket_dir))
        self._run(
            self._tool("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            # Durability is what the fault tests check: nothing here may cheat.
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "max_connections": "100",
            "shared_buffers": "32MB",
            "logging_collector": "off",
            "log_min_messages": "warning",
            **self.overrides,
        }
        lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
        # Written as the owner, so the server may read it whoever we are.
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/pg_server.py\n" + lines)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start (crash recovery included) and return once it accepts connections."""
        error = self.try_start(timeout_s)
        if error is not None:
            pytest.fail(error, pytrace=False)

    def try_start(self, timeout_s: float) -> str | None:
        result = self._run(
            self._tool("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(int(timeout_s)),
            "start",
            check=False,
            timeout=timeout_s + 10,
        )
        if result.returncode == 0 and self.is_running():
            return None
        return (
            f"PostgreSQL did not start on port {self.port}:\n"
            f"{result.stdout}{result.stderr}\n{self.log_tail()}"
        )

    def move_to(self, port: int) -> None:
        """Listen on ``port`` from the next start (a later line wins in postgresql.conf)."""
        self.port = port
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {port}\n")

    def stop(self, mode: StopMode = "immediate") -> None:
        """``pg_ctl stop -m <mode>``: ``immediate`` kills it without a checkpoint (a crash)."""
        if not self.is_running():
            return
        self._run(self._tool("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def is_running(self) -> bool:
        result = self._run(self._tool("pg_ctl"), "-D", str(self.data), "status", check=False)
        return result.returncode == 0

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return "(no PostgreSQL log)"


def _enterable_by_others(path: Path) -> bool:
    return all(part.stat().st_mode & 0o001 for part in (path, *path.parents))


def _cluster_directory() -> Path:
    base = Path(tempfile.gettempdir())
    if os.geteuid() == 0 and not _enterable_by_others(base):
        base = Path("/tmp")
    directory = Path(tempfile.mkdtemp(prefix="crucible-pg-", dir=base))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(OS_USER)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    return directory


@contextmanager
def throwaway_postgres(
    keep_log_in: Path | None = None, settings: Mapping[str, str] | None = None
) -> Iterator[PgServer]:
    """A started PostgreSQL of its own; stopped (immediate) and deleted afterwards.

    ``keep_log_in`` (a test's ``tmp_path``) receives a copy of the server log at the end;
    ``settings`` go to its postgresql.conf over the defaults (``max_connections``, ...).
    """
    bindir = require_postgres()
    directory = _cluster_directory()
    server = PgServer(
        directory=directory, port=free_port(), bindir=bindir, overrides=dict(settings or {})
    )
    try:
        server.init()
        for attempt in range(BIND_ATTEMPTS):
            error = server.try_start(START_TIMEOUT_S)
            if error is None:
                break
            # Another process took the free port between the probe and the bind.
            if attempt + 1 == BIND_ATTEMPTS or "could not bind" not in error:
                pytest.fail(error, pytrace=False)
            server.move_to(free_port())
        yield server
    finally:
        with suppress(RuntimeError, subprocess.TimeoutExpired):
            server.stop("immediate")
        if keep_log_in is not None and server.log.exists():
            shutil.copyfile(server.log, keep_log_in / "postgres.log")
        shutil.rmtree(directory, ignore_errors=True)


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; returns the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
