"""The service as a subprocess for the payload benchmark: started, sampled, stopped.

``storage-service serve`` on a port of the caller's choosing, its resident set and CPU
time read from ``/proc`` (Linux), and a throwaway PostgreSQL database to run it on.
"""

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.support import create_database, drop_database

SAMPLE_INTERVAL_S = 0.05


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` from ``/proc/<pid>/status`` (Linux)."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class RssSampler:
    """Samples a process's RSS every 50 ms in a thread while the ``with`` block runs."""

    pid: int
    interval: float = SAMPLE_INTERVAL_S
    samples: list[int] = field(default_factory=list)
    cpu: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "RssSampler":
        self.cpu = -cpu_seconds(self.pid)
        self.samples.append(rss_bytes(self.pid))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with suppress(OSError, RuntimeError):
            self.samples.append(rss_bytes(self.pid))
            self.cpu += cpu_seconds(self.pid)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return

    @property
    def peak(self) -> int:
        return max(self.samples)


@contextmanager
def running_server(
    env: dict[str, str], port: int, log_path: Path, start_timeout_s: float = 60
) -> Iterator[int]:
    """``storage-service serve`` in a subprocess; yields its pid once /health answers 200."""
    executable = Path(sys.executable).parent / "storage-service"
    command = (
        [str(executable), "serve"]
        if executable.exists()
        else [
            sys.executable,
            "-m",
            "interfaces.cli",
            "serve",
        ]
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            _wait_healthy(process, f"http://127.0.0.1:{port}", log_path, start_timeout_s)
            yield process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(
    process: "subprocess.Popen[bytes]", base: str, log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the server did not start:\n" + log_path.read_text(errors="replace"))
        time.sleep(0.2)


@contextmanager
def throwaway_postgres(admin_url: str) -> Iterator[str]:
    """A new empty database on ``admin_url``'s server, dropped on exit."""
    dsn = asyncio.run(create_database(admin_url, "bench_payloads"))
    try:
        yield dsn
    finally:
        asyncio.run(drop_database(admin_url, dsn))
