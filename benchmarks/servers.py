"""ASGI apps under uvicorn as subprocesses, configured like production.

``uvicorn --factory <app> --workers N --loop uvloop --http httptools --no-access-log``.
The service runs as ``storage-service serve --workers N`` runs it: its worker factory
configures the service's own logging (``log_config=None``, so uvicorn installs none) and
writes one access line per request. The ceiling apps have no logging of their own and get
``uvicorn_logging.json`` (root at INFO on stderr). The server's output goes to a file; it
is ready when every worker has logged "Application startup complete" and the ready path
answers 200.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LOGGING_CONFIG = Path(__file__).parent / "uvicorn_logging.json"
STARTUP_LINE = "Application startup complete"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class ServerError(RuntimeError):
    """A server did not start; the message holds the end of its log."""


@dataclass(frozen=True)
class RunningServer:
    url: str
    pid: int
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def uvicorn_command(
    factory: str,
    port: int,
    workers: int,
    log_config: Path | None = LOGGING_CONFIG,
    root: Path = ROOT,
) -> list[str]:
    """``root``: the source tree the factory is imported from (this one unless given)."""
    command = [
        str(Path(sys.executable).with_name("uvicorn")),
        "--factory",
        factory,
        "--host=127.0.0.1",
        f"--port={port}",
        f"--workers={workers}",
        "--loop=uvloop",
        "--http=httptools",
        "--no-access-log",
        f"--app-dir={root}",
    ]
    return command if log_config is None else [*command, f"--log-config={log_config}"]


@asynccontextmanager
async def uvicorn_server(
    factory: str,
    *,
    workers: int,
    env: Mapping[str, str],
    log: Path,
    ready_path: str = "/",
    log_config: Path | None = LOGGING_CONFIG,
    root: Path = ROOT,
) -> AsyncIterator[RunningServer]:
    """Serve ``factory`` on a free port until the block ends; stops it whatever happens."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: S603, ASYNC220 - our own command; waited for below
            uvicorn_command(factory, port, workers, log_config, root),
            cwd=root,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        await _wait_ready(process, url + ready_path, log, workers)
        yield RunningServer(url=url, pid=process.pid, log=log)
    finally:
        await asyncio.to_thread(_stop, process)


async def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, workers: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerError(f"server exited with {process.returncode}:\n{_tail(log)}")
            started = (await asyncio.to_thread(log.read_text, errors="replace")).count(STARTUP_LINE)
            if started >= workers:
                with suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
            await asyncio.sleep(0.2)
    raise ServerError(f"server not ready within {START_TIMEOUT_S:.0f}s:\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server (it stops its workers), SIGKILL to its group if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
