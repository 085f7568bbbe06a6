"""``make bench-soak``: RSS of the service's workers under mixed load, and its trend.

Deploys the service as ``make bench`` does (PostgreSQL + Redis, ``WORKERS`` uvicorn
workers), seeds the records of the suite, then for ``BENCH_SOAK_MINUTES`` (10) runs
wrk in slices of ``BENCH_SOAK_SLICE`` seconds (15) cycling through create, get_hot,
update_small, logs_append, events_append, celery_update and list, reading the
resident set (``VmRSS``) of every worker after each slice. The first fifth of the run
is warm-up (caches, pools, allocator arenas filling); the trend is the least-squares
slope of the workers' summed RSS over the rest, in MB per minute. Writes its section
into docs/benchmarks.md (``--no-write`` leaves it alone).
"""

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.deployment import BenchConfig, deployment
from benchmarks.http_suite import DOC, Suite
from benchmarks.measurement import failures_of, named_failures
from benchmarks.report import replace_section
from benchmarks.wrk_load import run_wrk

SECTION = "make bench-soak"
HEADING = "### Memory under mixed load (`make bench-soak`)"
MIX = ("create", "get_hot", "update_small", "logs_append", "events_append", "celery_update")
MB = 1_000_000


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def worker_rss(server_pid: int) -> dict[int, int]:
    """RSS of each worker process (the children of uvicorn's supervisor), by pid."""
    workers = [pid for pid in _children(server_pid) if _rss_bytes(pid) > 0]
    return {pid: _rss_bytes(pid) for pid in workers}


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` pairs, per minute."""
    if len(samples) < 2:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [v for _, v in samples]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return 60 * sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


async def run(config: BenchConfig, minutes: float, slice_s: float, *, write: bool) -> str:
    started = datetime.now(UTC)
    run_tag = f"s{uuid.uuid4().hex[:6]}"
    samples: list[tuple[float, float]] = []
    requests = 0
    failed: Counter[str] = Counter()  # "<scenario> <status or 'socket'>": failed requests
    async with deployment(config, prefix="bench_soak") as deployed:
        suite = Suite(config, deployed, run_tag)
        await suite.seed()
        scenarios = suite.scenarios()
        first = worker_rss(deployed.service.pid)
        clock = time.monotonic()
        index = 0
        while time.monotonic() - clock < minutes * 60:
            scenario = scenarios[MIX[index % len(MIX)]]
            measured = await run_wrk(
                scenario.name,
                deployed.service.url,
                scenario.script,
                scenario.args(f"{index}"),
                duration_s=slice_s,
                connections=config.connections,
                threads=config.threads,
            )
            requests += int(measured.rate * slice_s)
            failures = failures_of(scenario.name, measured)
            failed.update(failures)
            rss = worker_rss(deployed.service.pid)
            elapsed = time.monotonic() - clock
            samples.append((elapsed, sum(rss.values()) / MB))
            print(
                f"  {elapsed / 60:5.1f} min  {scenario.name:<14} {measured.rate:8,.0f} req/s  "
                f"workers RSS {sum(rss.values()) / MB:7.1f} MB"
                + (f"  errors: {named_failures(failures)}" if failures else ""),
                flush=True,
            )
            index += 1
    steady = [sample for sample in samples if sample[0] >= minutes * 60 / 5]
    whole, trend = slope_per_minute(samples), slope_per_minute(steady)
    start_mb = sum(first.values()) / MB
    text = "\n".join(
        [
            f"Run {started:%Y-%m-%d %H:%M} UTC: WORKERS={config.workers}, "
            f"{config.connections} connections, {minutes:g} min of {slice_s:g} s slices "
            f"cycling {', '.join(MIX)}; about {requests:,} requests, {failed.total()} errors"
            + (f" ({named_failures(failed)})." if failed else "."),
            "",
            "| | MB |",
            "|---|---:|",
            f"| workers' RSS after seeding | {start_mb:.1f} |",
            f"| after the first slice | {samples[0][1]:.1f} |" if samples else "",
            f"| at the end | {samples[-1][1]:.1f} |" if samples else "",
            f"| peak | {max(v for _, v in samples):.1f} |" if samples else "",
            "",
            f"Slope over the whole run {whole:+.2f} MB/min; after the first fifth (warm-up) "
            f"{trend:+.2f} MB/min over {len(steady)} samples.",
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
    minutes = float(os.environ.get("BENCH_SOAK_MINUTES") or 10)
    slice_s = float(os.environ.get("BENCH_SOAK_SLICE") or 15)
    asyncio.run(run(BenchConfig.from_env(), minutes, slice_s, write=not arguments.no_write))


if __name__ == "__main__":
    main()
