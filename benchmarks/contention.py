"""``make bench-contention``: many writers on a few records, as the platform's worker,
Celery tasks and gateway are, with the errors, the latency and PostgreSQL's deadlocks.

Deploys the service as ``make bench`` does (PostgreSQL + Redis, ``WORKERS`` uvicorn
workers), seeds ``BENCH_CONTENTION_RECORDS`` (4) queued records per wrk thread for each
scenario, then runs ``BENCH_CONTENTION_ROUNDS`` (3) rounds of ``BENCH_DURATION`` seconds
each of:

- celery_update: ``STARTED`` and ``RETRY`` in turn, so records move ``queued → running``
  beside others moving back, which moves two statistics counter rows in opposite
  directions (the deadlock of ADR 0036);
- update_small: plain 2 KB ``PUT``s, whose version conflicts the service retries inside.

With 32 connections over 8 records, each record is written by several requests at once.
Counts the deadlocks PostgreSQL detected in the run's database (``pg_stat_database``, read
once the service's backends have flushed their statistics, which an idle backend does
within ``STATS_FLUSH_S``). Writes its section into docs/benchmarks.md (``--no-write``
leaves it alone).
"""

import argparse
import asyncio
from collections import Counter
from datetime import UTC, datetime

import asyncpg
import httpx

from benchmarks.deployment import BenchConfig, Deployment, deployment
from benchmarks.http_suite import DOC, SMALL_OUTPUT
from benchmarks.measurement import Measurement, failures_of, named_failures
from benchmarks.report import replace_section
from benchmarks.seeding import record_ids, seed_records
from benchmarks.support import env_count
from benchmarks.wrk_load import run_wrk
from infrastructure.postgres.pool import driver_dsn

SECTION = "make bench-contention"
HEADING = "### Many writers on a few records (`make bench-contention`)"
# An idle PostgreSQL 15 backend flushes its pending statistics after 10 s.
STATS_FLUSH_S = 11.0
# name, wrk script, record prefix, extra wrk arguments after (prefix, records per thread)
SCENARIOS = (
    ("celery_update", "celery.lua", "ctn-c-", ()),
    ("update_small", "update.lua", "ctn-u-", (str(SMALL_OUTPUT),)),
)


async def deadlocks(dsn: str) -> int:
    """The deadlocks PostgreSQL has detected in ``dsn``'s database."""
    connection = await asyncpg.connect(driver_dsn(dsn))
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        found = await connection.fetchval(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await connection.close()
    return int(found or 0)


async def _seed(deployed: Deployment, config: BenchConfig, per_thread: int) -> None:
    async with httpx.AsyncClient(base_url=deployed.service.url, timeout=60) as client:
        for _, _, prefix, _ in SCENARIOS:
            await seed_records(client, record_ids(prefix, per_thread * config.threads))


def row(round_: int, measured: Measurement) -> str:
    named = named_failures(failures_of(measured.name, measured)) or "none"
    return (
        f"| {round_} | {measured.name} | {measured.rate:,.0f} | {measured.p50_ms:.1f} | "
        f"{measured.p99_ms:.1f} | {named} |"
    )


async def run(config: BenchConfig, per_thread: int, rounds: int, *, write: bool) -> str:
    started = datetime.now(UTC)
    lines: list[str] = []
    failed: Counter[str] = Counter()
    requests = 0
    async with deployment(config, prefix="bench_contention") as deployed:
        await _seed(deployed, config, per_thread)
        before = await deadlocks(deployed.dsn)
        for round_ in range(1, rounds + 1):
            for name, script, prefix, extra in SCENARIOS:
                measured = await run_wrk(
                    name,
                    deployed.service.url,
                    script,
                    [prefix, str(per_thread), *extra],
                    duration_s=config.duration_s,
                    connections=config.connections,
                    threads=config.threads,
                )
                requests += measured.requests
                failed.update(failures_of(name, measured))
                lines.append(row(round_, measured))
                print(lines[-1], flush=True)
        await asyncio.sleep(STATS_FLUSH_S)
        detected = await deadlocks(deployed.dsn) - before
    records = per_thread * config.threads
    text = "\n".join(
        [
            f"Run {started:%Y-%m-%d %H:%M} UTC: WORKERS={config.workers}, "
            f"{config.connections} connections over {records} records a scenario, "
            f"{rounds} rounds of {config.duration_s:g} s; {requests:,} requests, "
            f"{failed.total()} failed; PostgreSQL detected {detected} deadlocks.",
            "",
            "| round | scenario | req/s | p50 ms | p99 ms | failures |",
            "|---:|---|---:|---:|---:|---|",
            *lines,
        ]
    )
    print(text)
    if write:
        DOC.write_text(replace_section(DOC.read_text(), SECTION, text, HEADING))
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    arguments = parser.parse_args()
    per_thread = env_count("BENCH_CONTENTION_RECORDS", 4)
    rounds = env_count("BENCH_CONTENTION_ROUNDS", 3)
    asyncio.run(run(BenchConfig.from_env(), per_thread, rounds, write=not arguments.no_write))


if __name__ == "__main__":
    main()
