"""The service as deployed, for one benchmark run, and everything it leaves removed after.

A throwaway PostgreSQL database (migrated with ``storage-service migrate``, served as a
role of the service's own under row-level security), Redis under
a key prefix of its own, a temporary file store, and the service under uvicorn with
``WORKERS`` processes (see ``servers``). On the way out the server stops, the Redis
keys under the prefix are deleted, the files removed and the database dropped,
whatever happened; the service's log is kept (its path printed) when it logged an error.
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as redis

from benchmarks.servers import ROOT, RunningServer, uvicorn_server
from benchmarks.support import DEFAULT_URL, service_role, throwaway_database

# What ``storage-service serve --workers N`` runs in each worker: settings from the
# environment and the service's own logging (JSON, as the container logs).
SERVICE_FACTORY = "interfaces.cli.server:worker_app"
SERVICE_LOG_FORMAT = "json"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


@dataclass(frozen=True)
class BenchConfig:
    """What a run uses, from the environment (BENCH_*, WORKERS) with the documented defaults."""

    duration_s: float = 10.0
    warmup_s: float = 2.0
    connections: int = 32
    threads: int = 2
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    database_url: str = DEFAULT_URL
    redis_url: str = DEFAULT_REDIS_URL

    @classmethod
    def from_env(cls) -> "BenchConfig":
        return cls(
            duration_s=_env_float("BENCH_DURATION", 10.0),
            warmup_s=_env_float("BENCH_WARMUP", 2.0),
            connections=_env_int("BENCH_CONNECTIONS", 32),
            threads=_env_int("BENCH_THREADS", 2),
            workers=_env_int("WORKERS", os.cpu_count() or 1),
            database_url=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL,
            redis_url=os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL,
        )


@dataclass(frozen=True)
class Deployment:
    service: RunningServer
    dsn: str
    env: dict[str, str]
    workdir: Path


def migrate(dsn: str) -> None:
    storage_service = Path(sys.executable).with_name("storage-service")
    command = [str(storage_service), "migrate"]
    env = {**os.environ, "DATABASE_URL": dsn}
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)  # noqa: S603


async def delete_redis_keys(url: str, prefix: str) -> int:
    client = redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await client.delete(*batch)
                batch = []
        if batch:
            deleted += await client.delete(*batch)
    finally:
        await client.aclose()
    return deleted


def service_server(
    env: dict[str, str], *, workers: int, log: Path, root: Path = ROOT
) -> AbstractAsyncContextManager[RunningServer]:
    """The service as ``serve --workers N`` runs it (its own logging), ready at /health;
    ``root``: the source tree it is served from (this one unless given)."""
    return uvicorn_server(
        SERVICE_FACTORY,
        workers=workers,
        env=env,
        log=log,
        ready_path="/health",
        log_config=None,
        root=root,
    )


@asynccontextmanager
async def service_on(
    dsn: str, redis_url: str, workers: int, workdir: Path, *, migration_dsn: str | None = None
) -> AsyncIterator[tuple[RunningServer, dict[str, str]]]:
    """The service on ``dsn`` with Redis under a key prefix of its own (its keys deleted
    after) and its files under ``workdir``; the server and its environment. ``migration_dsn``:
    the tables' owner, for what the service's own role may not do (``ANALYZE``)."""
    key_prefix = f"bench:{uuid.uuid4().hex[:10]}:"
    env = {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": key_prefix,
        "FILE_STORAGE_PATH": str(workdir / "files"),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": SERVICE_LOG_FORMAT,
    }
    if migration_dsn is not None:
        env["MIGRATION_DATABASE_URL"] = migration_dsn
    try:
        async with service_server(env, workers=workers, log=workdir / "service.log") as service:
            yield service, env
    finally:
        await delete_redis_keys(redis_url, key_prefix)


@asynccontextmanager
async def deployment(config: BenchConfig, prefix: str = "bench_http") -> AsyncIterator[Deployment]:
    """The service in its production configuration on throwaway storage."""
    workdir = Path(tempfile.mkdtemp(prefix="crucible-bench-"))
    try:
        async with throwaway_database(config.database_url, prefix) as dsn:
            await asyncio.to_thread(migrate, dsn)
            async with (
                service_role(config.database_url, dsn) as service_dsn,
                service_on(
                    service_dsn, config.redis_url, config.workers, workdir, migration_dsn=dsn
                ) as (service, env),
            ):
                yield Deployment(service=service, dsn=dsn, env=env, workdir=workdir)
    finally:
        try:
            kept = keep_if_errors(workdir / "service.log", Path(tempfile.gettempdir()), prefix)
        except OSError as error:  # the run's own outcome, not this, is what to report
            print(f"the service's log could not be kept: {error}")
        else:
            if kept is not None:
                print(f"the service logged {kept[1]} errors; its log is kept: {kept[0]}")
        shutil.rmtree(workdir, ignore_errors=True)


ERROR_LEVELS = frozenset({"error", "critical"})


def keep_if_errors(log: Path, directory: Path, name: str) -> tuple[Path, int] | None:
    """``log`` moved into ``directory`` when it holds an error line (the service logs JSON,
    a traceback in the line), and how many: an error the load met is then explained by the
    service's own words, not lost with the run's working directory."""
    try:
        with log.open("rb") as lines:  # a soak logs over a million lines: read as a stream
            errors = sum(1 for line in lines if _is_error(line))
    except FileNotFoundError:
        return None
    if not errors:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = directory / f"crucible-{name}-{stamp}-service.log"
    shutil.move(log, kept)
    return kept, errors


def _is_error(line: bytes) -> bool:
    """Whether the JSON line's ``level`` is an error's; only a line that names one is parsed
    (the access lines, nearly all of a run's, are not)."""
    if not any(level.encode() in line for level in ERROR_LEVELS):
        return False
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("level") in ERROR_LEVELS
