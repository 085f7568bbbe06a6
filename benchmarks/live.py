"""``make bench-live``: the change feed under load, over HTTP, on two replicas.

Both replicas run as deployed (PostgreSQL + Redis, ``WORKERS`` each) on one database.

1. **Lag.** Replica A takes wrk's create load and a probe create every 50 ms; replica B
   holds ``BENCH_LIVE_STREAMS`` (10) streams of ``/changes/stream``. The readers share
   this one Python process with the probe writer: with 100 of them it parsed some 50,000
   messages a second on two cores and measured its own backlog, not the service's. The lag is the
   arrival of a probe's change at a stream on B minus A's answer to the probe (the
   commit came before the answer), and minus the probe's send (an upper bound). Every
   stream must receive every probe: a stream that misses one fails the run.
2. **Streams.** ``BENCH_LIVE_HELD`` (1000) streams held on B for ``BENCH_LIVE_HOLD_S``
   (60) while probes trickle in: the workers' RSS before, at the start and the end of
   the hold, and after the streams closed.
3. **The outbox's cost.** create and logs_append on A, alternately as deployed and with
   the feed's write-side parts removed (the ``txid`` default and the ``(txid, id)``
   index; the audit entry itself was written before the feed existed), three rounds.

Writes docs/bench-live.md.
"""

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from benchmarks.deployment import BenchConfig, Deployment, deployment, service_server
from benchmarks.live_streams import (
    ProbeWriter,
    StreamReader,
    close_readers,
    create_load,
    lags_ms,
    open_readers,
    stream_client,
)
from benchmarks.measurement import Measurement, percentile
from benchmarks.seeding import record_ids, seed_records
from benchmarks.soak import worker_rss
from benchmarks.support import write_report
from benchmarks.wrk_load import run_wrk
from domain.status import EvaluationStatus

REPORT = Path(__file__).resolve().parent.parent / "docs" / "bench-live.md"
MB = 1024 * 1024
PROBE_INTERVAL_S = 0.05
LOG_RECORDS = 200
WITHOUT_FEED = (
    "DROP INDEX IF EXISTS idx_audit_log_feed",
    "ALTER TABLE audit_log ALTER COLUMN txid SET DEFAULT 0",
)
WITH_FEED = (
    "ALTER TABLE audit_log ALTER COLUMN txid SET DEFAULT pg_current_xact_id()::text::bigint",
    "CREATE INDEX IF NOT EXISTS idx_audit_log_feed ON audit_log (txid, id)",
)


def _env(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


async def _drain(writer: ProbeWriter, readers: list[StreamReader], seconds: float) -> None:
    """Wait until every reader has every answered probe, or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(set(writer.answered) <= set(r.arrivals) for r in readers):
            return
        await asyncio.sleep(0.05)


async def measure_lag(config: BenchConfig, a: str, b: str, streams: int) -> list[str]:
    writer = ProbeWriter(interval_s=PROBE_INTERVAL_S)
    async with stream_client(b) as listening, httpx.AsyncClient(base_url=a, timeout=30) as probe:
        readers, tasks = await open_readers(listening, "/changes/stream", streams)
        try:
            load = create_load(config, a, "live-load")
            await writer.run(probe, config.duration_s, "lag")
            created = await load
            await _drain(writer, readers, 10)
        finally:
            await close_readers(tasks)
    first = readers[0]
    after_answer = lags_ms(writer, first, writer.answered.__getitem__)
    after_send = lags_ms(writer, first, writer.sent.__getitem__)
    missed = [len(set(writer.answered) - set(r.arrivals)) for r in readers]
    all_lags = sorted(
        lag for r in readers for lag in lags_ms(writer, r, writer.answered.__getitem__)
    )
    lines = [
        f"- load on replica A: create at {created.rate:,.0f} req/s "
        f"(p50 {created.p50_ms:.1f} ms, p99 {created.p99_ms:.1f} ms, {created.errors} errors), "
        f"plus {len(writer.answered)} probes answered",
        f"- {streams} streams on replica B received {sum(r.changes for r in readers):,} "
        f"changes; probes missed per stream: max {max(missed)} (0 = nothing skipped)",
        "",
        "| lag of a probe's change at replica B | p50 | p99 | max |",
        "|---|---|---|---|",
        _lag_row("after A answered (one stream)", after_answer),
        _lag_row("after the probe was sent (one stream)", after_send),
        _lag_row(f"after A answered (all {streams} streams)", all_lags),
    ]
    if max(missed):
        raise RuntimeError("a stream missed a probe:\n" + "\n".join(lines))
    return lines


def _lag_row(label: str, lags: list[float]) -> str:
    if not lags:
        return f"| {label} | - | - | - |"
    return (
        f"| {label} | {percentile(lags, 50):.0f} ms | {percentile(lags, 99):.0f} ms | "
        f"{lags[-1]:.0f} ms |"
    )


async def measure_streams(a: str, b_pid: int, b: str, held: int) -> list[str]:
    hold_s = _env("BENCH_LIVE_HOLD_S", 60)
    before = sum(worker_rss(b_pid).values())
    writer = ProbeWriter(interval_s=0.1)
    async with stream_client(b) as listening, httpx.AsyncClient(base_url=a, timeout=30) as probe:
        readers, tasks = await open_readers(listening, "/changes/stream", held)
        try:
            await asyncio.sleep(2)
            opened = sum(worker_rss(b_pid).values())
            await writer.run(probe, hold_s, "hold")
            await _drain(writer, readers, 10)
            held_end = sum(worker_rss(b_pid).values())
        finally:
            await close_readers(tasks)
    await asyncio.sleep(2)
    after = sum(worker_rss(b_pid).values())
    missed = max(len(set(writer.answered) - set(r.arrivals)) for r in readers)
    per_stream_kb = (opened - before) / held / 1024
    return [
        f"- {held} streams open on replica B for {hold_s:.0f} s while "
        f"{len(writer.answered)} changes reached each; probes missed per stream: max {missed}",
        "",
        "| replica B workers' RSS | MB |",
        "|---|---|",
        f"| before | {before / MB:.1f} |",
        f"| streams open | {opened / MB:.1f} ({per_stream_kb:.0f} KB a stream) |",
        f"| end of the hold | {held_end / MB:.1f} ({(held_end - opened) / MB:+.1f}) |",
        f"| streams closed | {after / MB:.1f} |",
    ]


async def _execute(dsn: str, statements: tuple[str, ...]) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def measure_outbox(config: BenchConfig, deployed: Deployment, a: str) -> list[str]:
    logs_prefix = f"live-logs-{time.time_ns()}-"
    per_thread = LOG_RECORDS // config.threads
    async with httpx.AsyncClient(base_url=a, timeout=30) as client:
        ids = record_ids(logs_prefix, per_thread * config.threads)
        await seed_records(client, ids, status=EvaluationStatus.RUNNING)
    load = {"connections": config.connections, "threads": config.threads}
    duration = config.duration_s
    scenarios: dict[str, Callable[[str], Awaitable[Measurement]]] = {
        "create": lambda tag: run_wrk(
            "create", a, "create.lua", [f"live-out-{tag}-"], duration_s=duration, **load
        ),
        "logs_append": lambda _: run_wrk(
            "logs_append",
            a,
            "logs.lua",
            [logs_prefix, str(per_thread)],
            duration_s=duration,
            **load,
        ),
    }
    rates: dict[tuple[str, bool], list[float]] = {}
    for round_ in range(3):
        for feed in (True, False):
            await _execute(deployed.dsn, WITH_FEED if feed else WITHOUT_FEED)
            for name, scenario in scenarios.items():
                measured = await scenario(f"{round_}-{feed}-{time.time_ns()}")
                rates.setdefault((name, feed), []).append(measured.rate)
    await _execute(deployed.dsn, WITH_FEED)
    lines = [
        "| scenario | without the feed's parts (req/s) | with them (req/s) | ratio |",
        "|---|---|---|---|",
    ]
    for name in scenarios:
        without = statistics.median(rates[(name, False)])
        with_feed = statistics.median(rates[(name, True)])
        lines.append(f"| {name} | {without:,.0f} | {with_feed:,.0f} | {with_feed / without:.2f} |")
    return lines


async def run(config: BenchConfig) -> str:
    started = datetime.now(UTC)
    streams = int(_env("BENCH_LIVE_STREAMS", 10))
    held = int(_env("BENCH_LIVE_HELD", 1000))
    async with deployment(config, prefix="bench_live") as deployed:
        a = deployed.service.url
        log = deployed.workdir / "replica-b.log"
        async with service_server(deployed.env, workers=config.workers, log=log) as replica_b:
            lag = await measure_lag(config, a, replica_b.url, streams)
            held_lines = await measure_streams(a, replica_b.pid, replica_b.url, held)
        outbox = await measure_outbox(config, deployed, a)
    return "\n".join(
        [
            "# Live changes: lag, streams and the outbox's cost",
            "",
            f"`make bench-live`, {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
            f"WORKERS={config.workers} per replica, wrk {config.connections} connections "
            f"for {config.duration_s:.0f} s a scenario. What each part measures: "
            "the docstring of benchmarks/live.py.",
            "",
            "## Lag from commit to a stream of another replica, under create load",
            "",
            *lag,
            "",
            "## Streams one replica holds",
            "",
            *held_lines,
            "",
            "## The feed's cost on writes",
            "",
            *outbox,
            "",
        ]
    )


def main() -> None:
    write_report(REPORT, run(BenchConfig.from_env()))


if __name__ == "__main__":
    main()
