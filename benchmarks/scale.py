"""``make bench-scale``: the running service's reads over HTTP as the table grows.

One throwaway PostgreSQL database (migrated with ``storage-service migrate``) is grown to
each size of ``BENCH_SCALE_SIZES`` in turn; at each size:

1. The evaluations up to that size, and their events (10 an evaluation, at most
   ``BENCH_SCALE_EVENTS_MAX`` in all), are appended with COPY (``scale_load``, rows from
   ``scale_rows``, progress bar on stderr): indexes and constraints dropped for the COPY
   and re-created from their own definitions, statistics counters rebuilt. Before it,
   the free disk space is checked against what the sizes before needed per row.
2. Without planner statistics: before any ANALYZE (autovacuum is off on this server)
   the service is started as ``make bench`` deploys it (``scale_http``: the uvicorn
   factory, Redis under its own key prefix, a temporary file store, ``WORKERS``
   processes) and left running ``BENCH_SCALE_SETTLE_S`` seconds; then the list's first
   page and its filtered pages are timed over HTTP, and what PostgreSQL then knows about
   the table (``pg_stats``, last ANALYZE) is recorded: a service that keeps statistics
   current shows it here.
3. ``VACUUM ANALYZE``, then every read over HTTP (``scale_probes``): p50 and p95 of
   ``BENCH_SCALE_HTTP_REPEAT`` sequential requests after 2 warm-ups, each answer checked.
4. The service stopped, its own query code on PostgreSQL reads the list's first pages
   and the deep page by cursor (``PgEvaluationPages``: one asyncpg statement,
   ``page_query``), statistics and GET, and each statement it ran is timed
   ``BENCH_SCALE_REPEAT`` times under ``EXPLAIN ANALYZE`` (``scale_plans``).
5. ``pg_database_size`` and the free space on the database's disk are recorded.

The growth tables (read by size), the run without statistics and each size in detail go
into docs/bench-scale.md between its generated-section markers (``scale_report``; the
text around them is kept); ``--no-write`` leaves it alone. The exit status is 1 when an
answer was wrong (not 2xx, empty, or without the evaluations it asks for).

Environment:

- ``BENCH_SCALE_SIZES`` (``100000,1000000``): the sizes, ascending, in evaluations;
  ``100000,1000000,10000000`` for the full run (about 35 GB of database at 10M).
- ``BENCH_SCALE_EVENTS_MAX`` (``10000000``): the most events in the table.
- ``BENCH_SCALE_HTTP_REPEAT`` (7): timed requests per read over HTTP.
- ``BENCH_SCALE_REPEAT`` (7): ``EXPLAIN ANALYZE`` runs per statement.
- ``BENCH_SCALE_SETTLE_S`` (10): how long the service runs on the unanalyzed table
  before its list is timed.
- ``WORKERS`` (1): the service's uvicorn processes.
- ``BENCH_DATABASE_URL`` (``postgresql://postgres@127.0.0.1:5432/postgres``) and
  ``BENCH_REDIS_URL`` (``redis://127.0.0.1:6379/0``): the servers used.
"""

import argparse
import asyncio
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from benchmarks.deployment import DEFAULT_REDIS_URL, migrate
from benchmarks.report import replace_section
from benchmarks.scale_http import scale_service, time_probes
from benchmarks.scale_load import load, vacuum_analyze
from benchmarks.scale_plans import measure
from benchmarks.scale_probes import list_probes, probes
from benchmarks.scale_report import PlannerState, SizeRun, Unanalyzed, render
from benchmarks.scale_rows import ScaleData
from benchmarks.servers import ROOT
from benchmarks.support import DEFAULT_URL, service_role, throwaway_database

DOC = ROOT / "docs" / "bench-scale.md"
SECTION = "make bench-scale"
HEADING = "## Measured (`make bench-scale`)"
EVENTS_PER_EVALUATION = 10
# Bytes (row, TOAST, indexes) of an evaluation and of an event before the first size has
# been measured (3,085 and 314 at 100,000); afterwards the tables as loaded give them.
BYTES_PER_EVALUATION = 3100
BYTES_PER_EVENT = 320
DISK_MARGIN = 1.3  # the index rebuilds' sort files beside the tables
RETIRED = {
    "BENCH_SCALE_EVALUATIONS": "BENCH_SCALE_SIZES",
    "BENCH_SCALE_EVENTS": "BENCH_SCALE_EVENTS_MAX",
}


@dataclass(frozen=True)
class ScaleConfig:
    sizes: tuple[int, ...] = (100_000, 1_000_000)
    events_max: int = 10_000_000
    http_repeat: int = 7
    repeat: int = 7
    settle_s: float = 10.0
    workers: int = 1
    database_url: str = DEFAULT_URL
    redis_url: str = DEFAULT_REDIS_URL
    # The newest record's creation time: the run's start, so reads of recent windows
    # (the last 24 hours, the explorer's 14 days) find what production would.
    end: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    @classmethod
    def from_env(cls) -> "ScaleConfig":
        for old, new in RETIRED.items():
            if os.environ.get(old):
                raise SystemExit(f"{old} is no longer read: set {new} (see benchmarks/scale.py)")
        env = os.environ.get
        sizes = tuple(int(size) for size in (env("BENCH_SCALE_SIZES") or "").split(",") if size)
        config = cls(
            sizes=sizes or cls.sizes,
            events_max=int(env("BENCH_SCALE_EVENTS_MAX") or cls.events_max),
            http_repeat=int(env("BENCH_SCALE_HTTP_REPEAT") or cls.http_repeat),
            repeat=int(env("BENCH_SCALE_REPEAT") or cls.repeat),
            settle_s=float(env("BENCH_SCALE_SETTLE_S") or cls.settle_s),
            workers=int(env("WORKERS") or cls.workers),
            database_url=env("BENCH_DATABASE_URL") or DEFAULT_URL,
            redis_url=env("BENCH_REDIS_URL") or DEFAULT_REDIS_URL,
        )
        if list(config.sizes) != sorted(set(config.sizes)) or config.sizes[0] < 1000:
            raise SystemExit("BENCH_SCALE_SIZES: ascending sizes of at least 1000, e.g. 100000")
        return config

    def events(self, evaluations: int) -> int:
        return min(evaluations * EVENTS_PER_EVALUATION, self.events_max)


async def planner_state(dsn: str) -> PlannerState:
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() "
            "AND tablename = 'evaluations') AS columns, "
            "greatest(last_analyze, last_autoanalyze) AS analyzed, n_mod_since_analyze "
            "FROM pg_stat_user_tables WHERE relname = 'evaluations'"
        )
    finally:
        await connection.close()
    assert row is not None
    return PlannerState(row["columns"], row["analyzed"], row["n_mod_since_analyze"])


async def disk(dsn: str) -> tuple[int, int]:
    """(``pg_database_size``, free bytes on the disk of the server's data directory)."""
    connection = await asyncpg.connect(dsn)
    try:
        size: int = await connection.fetchval("SELECT pg_database_size(current_database())")
        directory: str = await connection.fetchval("SHOW data_directory")
    finally:
        await connection.close()
    try:
        free = shutil.disk_usage(directory).free
    except OSError:  # another machine's path, or not ours to look at: this disk then
        free = shutil.disk_usage(ROOT).free
    return size, free


async def check_room(dsn: str, runs: Sequence[SizeRun], evaluations: int, events: int) -> None:
    """Stop before a load that would fill the disk, saying what it would need.

    Bytes per evaluation and per event (table, TOAST and indexes) from the tables as loaded
    so far (estimates before the first size), times the rows to add, plus a margin for the
    index rebuilds' sort files.
    """
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT pg_total_relation_size('evaluations') AS evaluations, "
            "pg_total_relation_size('evaluation_events') AS events"
        )
    finally:
        await connection.close()
    assert row is not None
    had = runs[-1] if runs else None
    per_evaluation = row["evaluations"] / had.evaluations if had else BYTES_PER_EVALUATION
    per_event = row["events"] / had.events if had and had.events else BYTES_PER_EVENT
    added = evaluations - (had.evaluations if had else 0)
    added_events = events - (had.events if had else 0)
    needed = int((per_evaluation * added + per_event * added_events) * DISK_MARGIN)
    _, free = await disk(dsn)
    print(
        f"{evaluations:,} evaluations, {events:,} events: about {needed / 1e9:.1f} GB "
        f"needed ({per_evaluation:,.0f} B an evaluation, {per_event:,.0f} B an event), "
        f"{free / 1e9:.1f} GB free",
        file=sys.stderr,
    )
    if needed > free:
        raise SystemExit(f"not enough disk for {evaluations:,} evaluations: stopping here")


async def grow(
    config: ScaleConfig, dsn: str, service_dsn: str, runs: list[SizeRun], evaluations: int
) -> SizeRun:
    """Load the table up to ``evaluations`` (as the owner, ``dsn``) and measure the service,
    connected as its own role (``service_dsn``) under row-level security."""
    start = runs[-1].evaluations if runs else 0
    events = config.events(evaluations)
    await check_room(dsn, runs, evaluations, events)
    segment = ScaleData(evaluations, events - config.events(start), start=start, end=config.end)
    load_s = await load(dsn, segment)
    whole = ScaleData(evaluations, events, end=config.end)
    print(f"{evaluations:,} evaluations loaded in {load_s:.0f} s; service", file=sys.stderr)
    before = await planner_state(dsn)
    async with scale_service(
        service_dsn, config.redis_url, config.workers, migration_dsn=dsn
    ) as service:
        await asyncio.sleep(config.settle_s)
        print(f"without statistics, after {config.settle_s:g} s", file=sys.stderr)
        unanalyzed = await asyncio.to_thread(
            time_probes, service.url, list_probes(), config.http_repeat
        )
        after = await planner_state(dsn)
        analyze_s = await vacuum_analyze(dsn)
        print("over HTTP", file=sys.stderr)
        http_probes, values = await probes(dsn, service.url, whole, config.http_repeat)
        http = await asyncio.to_thread(time_probes, service.url, http_probes, config.http_repeat)
    run = SizeRun(
        evaluations=evaluations,
        events=events,
        load_s=load_s,
        analyze_s=analyze_s,
        database_bytes=0,
        free_bytes=0,
        unanalyzed=Unanalyzed(unanalyzed, config.settle_s, before, after),
        http=http,
        values=values,
        load_average=os.getloadavg()[0],
    )
    print("server-side", file=sys.stderr)
    try:
        run.server = await measure(dsn, whole, config.repeat)
    except Exception as error:  # reported in the document: the HTTP table stands alone
        run.server_error = f"{type(error).__name__}: {error}"
        print(f"server-side measurement failed: {run.server_error}", file=sys.stderr)
    run.database_bytes, run.free_bytes = await disk(dsn)
    print(
        f"database {run.database_bytes / 1e9:.2f} GB, {run.free_bytes / 1e9:.1f} GB free",
        file=sys.stderr,
    )
    return run


async def run(config: ScaleConfig, *, write: bool) -> bool:
    """Measure every size; True when every answer was right."""
    runs: list[SizeRun] = []
    started = time.perf_counter()
    async with throwaway_database(config.database_url, "bench_scale") as dsn:
        await asyncio.to_thread(migrate, dsn)
        async with service_role(config.database_url, dsn) as service_dsn:
            for evaluations in config.sizes:
                runs.append(await grow(config, dsn, service_dsn, runs, evaluations))
    text = render(
        runs, repeat=config.http_repeat, workers=config.workers, events_max=config.events_max
    )
    print(text)
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if write:
        document = DOC.read_text() if DOC.exists() else ""
        DOC.write_text(replace_section(document, SECTION, text, HEADING))
        print(f"written to {Path(DOC).relative_to(ROOT)}", file=sys.stderr)
    return all(timing.broken is None for r in runs for timing in [*r.http, *r.unanalyzed.timings])


def main() -> None:
    parser = argparse.ArgumentParser(description="make bench-scale")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/bench-scale.md")
    arguments = parser.parse_args()
    if not asyncio.run(run(ScaleConfig.from_env(), write=not arguments.no_write)):
        sys.exit(1)


if __name__ == "__main__":
    main()
