"""``make bench-fsync``: how much of update_large's gap to its ceiling is the disk's fsyncs.

A 200 KB update makes two files durable (the payload, then ``metadata.json`` beside it,
each a temp file, fsync, rename and fsync of the directory: ADR 0004); the minimal app of
``make bench`` makes one. This runs update_large and that minimal app's update in one run,
``ROUNDS`` times in turn, first as they are, then with ``fsync`` a no-op in both servers
(libeatmydata preloaded; PostgreSQL, a server of its own, still commits durably). If the
ratio climbs once fsyncs cost nothing, the disk's fsyncs are what holds it. Writes a
section of docs/benchmarks.md.
"""

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.deployment import BenchConfig, Deployment, deployment, service_server
from benchmarks.http_suite import LARGE, LARGE_CEILING_PATH, PER_THREAD, Suite, ceiling_server
from benchmarks.measurement import Measurement
from benchmarks.report import error_notes, replace_section
from benchmarks.seeding import analyze, record_ids, seed_records
from benchmarks.servers import ROOT, RunningServer

DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "make bench-fsync"
HEADING = "## update_large and the disk's fsyncs (`make bench-fsync`)"
ROUNDS = 2
NO_FSYNC_LIBRARIES = (
    Path("/usr/lib/x86_64-linux-gnu/libeatmydata.so"),
    Path("/usr/lib/aarch64-linux-gnu/libeatmydata.so"),
    Path("/usr/lib/libeatmydata.so"),
)


def no_fsync_library() -> Path:
    """libeatmydata, which turns fsync into a no-op for the process it is preloaded in."""
    for candidate in NO_FSYNC_LIBRARIES:
        if candidate.exists():
            return candidate
    raise SystemExit("libeatmydata is not installed (Debian: apt-get install eatmydata)")


@asynccontextmanager
async def servers(
    config: BenchConfig, deployed: Deployment, preload: Path | None, name: str
) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    """The minimal app and a second service instance on the same storage, ``preload``-ed."""
    extra = {} if preload is None else {"LD_PRELOAD": str(preload)}
    async with AsyncExitStack() as stack:
        ceiling = await stack.enter_async_context(
            ceiling_server(deployed, config.workers, f"ceiling-{name}", extra)
        )
        service = await stack.enter_async_context(
            service_server(
                {**deployed.env, **extra},
                workers=config.workers,
                log=deployed.workdir / f"service-{name}.log",
            )
        )
        yield ceiling, service


async def run(config: BenchConfig, *, write: bool) -> str:
    started = datetime.now(UTC)
    load = os.getloadavg()[0]
    preload = no_fsync_library()
    clock = time.perf_counter()
    rates: dict[str, list[tuple[Measurement, Measurement]]] = {"fsync": [], "no fsync": []}
    async with deployment(config) as deployed:
        suite = Suite(config, deployed, f"f{uuid.uuid4().hex[:6]}")
        large = suite.scenarios()["update_large"]
        async with httpx.AsyncClient(base_url=deployed.service.url, timeout=30) as client:
            ids = record_ids(suite.prefix(LARGE), PER_THREAD[LARGE] * config.threads)
            await seed_records(client, ids)
        await analyze(deployed.dsn)
        print(f"measuring ({time.perf_counter() - clock:.0f} s)", flush=True)
        async with (
            servers(config, deployed, None, "fsync") as durable,
            servers(config, deployed, preload, "nofsync") as unsynced,
        ):
            for _ in range(ROUNDS):
                for mode, (ceiling, service) in (("fsync", durable), ("no fsync", unsynced)):
                    minimal = await suite.wrk(
                        f"minimal app ({mode})",
                        ceiling.url,
                        large.script,
                        lambda tag: [*large.args(tag), LARGE_CEILING_PATH],
                    )
                    measured = await suite.wrk(
                        f"update_large ({mode})", service.url, large.script, large.args
                    )
                    rates[mode].append((measured, minimal))
    report = render(config, started, load, rates)
    print(report)
    if write:
        DOC.write_text(replace_section(DOC.read_text(), SECTION, report, HEADING))
    return report


def render(
    config: BenchConfig,
    started: datetime,
    load: float,
    rates: dict[str, list[tuple[Measurement, Measurement]]],
) -> str:
    lines = [
        f"Run {started:%Y-%m-%d %H:%M} UTC: WORKERS={config.workers}, {config.connections} "
        f"connections, {config.duration_s:g} s per run after {config.warmup_s:g} s of "
        f"warm-up, {ROUNDS} rounds; load average {load:.2f} at start.",
        "",
        "| fsync | round | update_large req/s | minimal app req/s | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode, pairs in rates.items():
        for number, (measured, minimal) in enumerate(pairs, start=1):
            lines.append(
                f"| {mode} | {number} | {measured.rate:,.0f} | {minimal.rate:,.0f} | "
                f"{_ratio(measured, minimal):.0%} |"
            )
    medians = {
        mode: statistics.median(_ratio(measured, minimal) for measured, minimal in pairs)
        for mode, pairs in rates.items()
    }
    lines += [
        "",
        "Median ratio: "
        + ", ".join(f"{mode} {ratio:.0%}" for mode, ratio in medians.items())
        + ". Durable files per request: update_large 2, the minimal app 1.",
    ]
    failed = error_notes([m for pairs in rates.values() for pair in pairs for m in pair])
    if failed:
        lines += ["", "Runs that failed requests (ratios count 2xx answers only):", *failed]
    return "\n".join(lines)


def _ratio(measured: Measurement, minimal: Measurement) -> float:
    return measured.ok_rate / minimal.ok_rate if minimal.ok_rate > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-write", action="store_true", help="leave docs/benchmarks.md")
    arguments = parser.parse_args()
    asyncio.run(run(BenchConfig.from_env(), write=not arguments.no_write))


if __name__ == "__main__":
    main()
