"""``make bench-export``: the Parquet warehouse export at ``BENCH_EXPORT_SIZE`` evaluations.

A throwaway PostgreSQL database is loaded by COPY (the rows of ``make bench-scale``),
then ``storage-service export --format parquet`` runs as its own process, as an operator
runs it: the wall time and the peak resident set of the full export; then 1,000 updates
through the running service's API, and the incremental export (``--since last``) that
picks them up. The files are read back with DuckDB and the row counts checked. Writes
docs/bench-export.md.
"""

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx

from benchmarks.deployment import DEFAULT_REDIS_URL, migrate
from benchmarks.scale_http import scale_service
from benchmarks.scale_load import load, vacuum_analyze
from benchmarks.scale_rows import ScaleData
from benchmarks.service_process import RssSampler
from benchmarks.support import DEFAULT_URL, env_count, throwaway_database, write_report

REPORT = Path(__file__).resolve().parent.parent / "docs" / "bench-export.md"
MB = 1024 * 1024
CHANGES = 1000


def export(dsn: str, target: Path, *extra: str) -> tuple[dict[str, Any], float, int]:
    """One ``export --format parquet`` process: its manifest, seconds and peak RSS."""
    command = [
        str(Path(sys.executable).with_name("storage-service")),
        "export",
        "--format",
        "parquet",
        "--to",
        str(target),
        "--json",
        *extra,
    ]
    env = {**os.environ, "DATABASE_URL": dsn, "LOG_LEVEL": "WARNING"}
    # Bytecode is compiled where the service is deployed (the image, make install): a
    # process of this run may cache the project's too, as any process there does.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603
    with RssSampler(process.pid) as sampler:
        stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"export failed:\n{stderr.decode(errors='replace')}")
    manifest: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return manifest, seconds, sampler.peak


async def change(base: str, data: ScaleData, count: int) -> list[str]:
    """``count`` metadata updates of distinct live evaluations through the API; a tenth of
    them also get an event and a log piece."""
    rng = random.Random(7)  # noqa: S311 - benchmark data
    picked = rng.sample(range(int(data.evaluations * 0.1)), count)
    ids = [data.evaluation_id(index) for index in picked]
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        queue = list(ids)

        async def worker() -> None:
            while queue:
                evaluation_id = queue.pop()
                body = {"metadata": {"bench_export": evaluation_id}}
                response = await client.put(f"/evaluations/{evaluation_id}", json=body)
                if response.status_code not in (200, 404):  # 404: a soft-deleted row
                    raise RuntimeError(f"{evaluation_id}: {response.status_code} {response.text}")
                if response.status_code == 200 and len(queue) % 10 == 0:
                    await _grow(client, evaluation_id)

        await asyncio.gather(*(worker() for _ in range(16)))
    return ids


async def _grow(client: httpx.AsyncClient, evaluation_id: str) -> None:
    """One more event and one more log piece for ``evaluation_id``."""
    base = f"/evaluations/{evaluation_id}"
    event = {"type": "bench_export", "message": evaluation_id}
    for path, body in ((f"{base}/events", event), (f"{base}/logs", {"content": "step\n"})):
        response = await client.post(path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text}")


def read_back(target: Path) -> tuple[int, int, int]:
    """Rows in all files and distinct ids, by DuckDB, and the files' bytes."""
    files = f"{target}/evaluations/*/*.parquet"
    relation = duckdb.sql(
        "SELECT count(*), count(DISTINCT id) FROM read_parquet($files, hive_partitioning = true)",
        params={"files": files},
    )
    assert relation is not None
    ((rows, ids),) = relation.fetchall()
    size = sum(path.stat().st_size for path in target.rglob("*.parquet"))
    return int(rows), int(ids), size


async def run() -> str:
    size = env_count("BENCH_EXPORT_SIZE")
    events = env_count("BENCH_EXPORT_EVENTS")
    data = ScaleData(size, events)
    target = Path(tempfile.mkdtemp(prefix="crucible-bench-export-"))
    started_at = datetime.now(UTC)
    try:
        async with throwaway_database(DEFAULT_URL, "bench_export") as dsn:
            await asyncio.to_thread(migrate, dsn)
            load_s = await load(dsn, data)
            await vacuum_analyze(dsn)
            print(f"{size:,} evaluations loaded in {load_s:.0f} s; full export", file=sys.stderr)
            full, full_s, full_rss = await asyncio.to_thread(
                export, dsn, target, "--tables", "evaluations,events,logs"
            )
            async with scale_service(dsn, DEFAULT_REDIS_URL, 1) as service:
                changed = await change(service.url, data, CHANGES)
            print(f"{len(changed)} changes; incremental export", file=sys.stderr)
            incremental, incremental_s, incremental_rss = await asyncio.to_thread(
                export, dsn, target, "--since", "last"
            )
        rows, ids, size_bytes = await asyncio.to_thread(read_back, target)
    finally:
        shutil.rmtree(target, ignore_errors=True)
    return "\n".join(
        [
            "# Warehouse export (Parquet)",
            "",
            f"`make bench-export`, {started_at:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
            f"PostgreSQL, {size:,} evaluations and {events:,} events loaded by COPY "
            f"({full['rows']:,} live, the rest soft-deleted). Each export is its own "
            "`storage-service export --format parquet --tables evaluations,events,logs` "
            "process (the incremental one continues the same tables); RSS is its peak "
            "resident set; rows/s counts the rows of all three tables.",
            "",
            "| run | rows | tombstones | events | log pieces | files | process (s) | "
            "the run itself (s) | rows/s | peak RSS |",
            "|---|---|---|---|---|---|---|---|---|---|",
            _row("full", full, full_s, full_rss),
            _row(
                f"incremental after {CHANGES:,} updates",
                incremental,
                incremental_s,
                incremental_rss,
            ),
            "",
            f"Read back by DuckDB: {rows:,} rows over {ids:,} ids in "
            f"{size_bytes / MB:,.1f} MB of Parquet (zstd).",
            "",
            f"The {CHANGES:,} changes are metadata updates through the API; a tenth of them "
            "also add an event and a log piece, so the incremental run writes those "
            "evaluations' whole timelines again.",
            "",
            "Targets (issue 24): the full export under 60 s with RSS under 300 MB; the "
            "incremental run after 1,000 changes under 2 s. A process's start-up (the "
            "service's imports) is in its wall time, not in the run's.",
            "",
        ]
    )


def _row(label: str, manifest: dict[str, Any], seconds: float, rss: int) -> str:
    """One run: the process's wall time (start-up included) and the run's own, from its
    manifest (what a scheduled export inside the service takes)."""
    started = datetime.fromisoformat(manifest["started_at"])
    own = (datetime.fromisoformat(manifest["finished_at"]) - started).total_seconds()
    rows = manifest["rows"] + manifest["tombstones"] + manifest["events"] + manifest["logs"]
    rate = rows / own if own else 0
    return (
        f"| {label} | {manifest['rows']:,} | {manifest['tombstones']:,} | "
        f"{manifest['events']:,} | {manifest['logs']:,} | "
        f"{len(manifest['files'])} | {seconds:.1f} | {own:.1f} | {rate:,.0f} | "
        f"{rss / MB:.0f} MB |"
    )


def main() -> None:
    write_report(REPORT, run())


if __name__ == "__main__":
    main()
