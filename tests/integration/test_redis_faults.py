"""Redis dies, hangs and comes back: the adapters bypass it fast and recover by themselves.

Each test runs its own ``redis-server`` on a free port (never the shared one),
so it can be killed or frozen without disturbing anything else.
"""

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from infrastructure.redis.cache import RedisCache
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.inspector import RedisInspector
from infrastructure.redis.running_registry import RedisRunningRegistry
from tests.services import IN_CI

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

KEY = "eval:{eval_1}"
RUNNING = RunningInfo(evaluation_id=EvaluationId("eval_1"), status=EvaluationStatus.RUNNING)
CONNECTION_LOGGER = "infrastructure.redis.connection"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisProcess:
    """A throwaway ``redis-server``: no persistence, loopback only."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def freeze(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()
            self.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; CI must not skip it", pytrace=False)
        pytest.skip("redis-server is not installed")
    process = RedisProcess(binary, free_port(), tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def until_working(cache: RedisCache, *, within: float) -> float:
    """Seconds until a write and a read go through again."""
    started = time.monotonic()
    version = 1_000
    while time.monotonic() - started < within:
        version += 1
        await cache.put_if_newer(KEY, version, b"back")
        if await cache.get(KEY) == b"back":
            return time.monotonic() - started
        await anyio.sleep(0.05)
    raise AssertionError(f"Redis adapters did not recover within {within}s")


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == CONNECTION_LOGGER
        and record.levelno == logging.WARNING
        and "unavailable" in record.getMessage()
    ]


async def test_killed_redis_is_bypassed_then_used_again_after_restart(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=CONNECTION_LOGGER)
    timeout_s = 0.5
    connection = RedisConnection(server.url, timeout_s=timeout_s, cooldown_s=0.3)
    cache = RedisCache(connection, ttl_seconds=60, prefix="t:")
    registry = RedisRunningRegistry(connection, prefix="t:")
    inspector = RedisInspector(connection, prefix="t:")
    try:
        await cache.put_if_newer(KEY, 1, b"v1")
        assert await cache.get(KEY) == b"v1"
        await registry.track(RUNNING)
        assert await registry.list() == [RUNNING]
        assert (await inspector.inspect()).status == "healthy"

        server.kill()

        calls = 50
        started = time.monotonic()
        for version in range(2, calls + 2):
            assert await cache.get(KEY) is None
            await cache.put_if_newer(KEY, version, b"lost")
            await cache.delete(KEY)
            assert await registry.list() is None
            assert await registry.get(RUNNING.evaluation_id) is None
            await registry.track(RUNNING)
            await registry.untrack(RUNNING.evaluation_id)
            await registry.replace_all([RUNNING])
        elapsed = time.monotonic() - started
        assert elapsed < calls * timeout_s / 5, f"{calls} rounds took {elapsed:.2f}s"

        report = await inspector.inspect(detailed=True)
        assert report.status == "unavailable"
        assert report.error
        assert len(outage_warnings(caplog)) == 1, "an outage is logged once, not per call"

        server.start()
        await until_working(cache, within=10)
        assert await registry.list() == []  # a fresh server: the index is rebuilt by the caller
        await registry.replace_all([RUNNING])
        assert await registry.list() == [RUNNING]
        assert (await inspector.inspect()).status == "healthy"
        assert len(outage_warnings(caplog)) == 1
    finally:
        await connection.close()


async def test_hung_redis_costs_one_timeout_per_cooldown(server: RedisProcess) -> None:
    timeout_s = 0.3
    connection = RedisConnection(server.url, timeout_s=timeout_s, cooldown_s=2.0)
    cache = RedisCache(connection, ttl_seconds=60, prefix="t:")
    registry = RedisRunningRegistry(connection, prefix="t:")
    try:
        await cache.put_if_newer(KEY, 1, b"v1")
        assert await cache.get(KEY) == b"v1"

        server.freeze()  # connections are accepted by the kernel but never answered

        calls = 50
        started = time.monotonic()
        for _ in range(calls):
            assert await cache.get(KEY) is None
            assert await registry.list() is None
        elapsed = time.monotonic() - started
        # Without the breaker this would be 2 * calls * timeout_s (30 s).
        assert elapsed < 4 * timeout_s, f"{2 * calls} calls took {elapsed:.2f}s"
        assert connection.is_open

        server.thaw()
        recovered = await until_working(cache, within=10)
        assert recovered < 2.0 + 1.0
        assert not connection.is_open
    finally:
        await connection.close()
