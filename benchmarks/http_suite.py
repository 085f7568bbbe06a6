"""``make bench``: the service in production configuration under wrk, against its ceilings.

One run, in this order so that each ceiling is measured next to the scenarios compared
with it (a shared machine drifts):

1. deploy (``deployment``): throwaway PostgreSQL database, Redis key prefix, temp file
   store, the service under uvicorn (uvloop, httptools, ``WORKERS`` processes); beside it
   the minimal app of the HTTP ceilings (``ceiling_app``, on the same database, Redis
   prefix and a temp directory of its own) and a second service instance with
   ``ENABLE_CACHING=false`` on the same storage (for get_cold), and a third with
   ``FILE_MIRROR=true`` (for the mirrored create and update), and a fourth with
   ``ENCRYPTION=on`` (get_hot and update_large sealed), same server and workers;
2. seed the records the scenarios need through the API (``seeding``), then ``ANALYZE``;
3. hello-world, hello-world + Redis GET; health, get_hot; the minimal list page, list;
   raw asyncpg INSERT and PK SELECT; create, create_keyed (each with an
   ``Idempotency-Key``), create_mirrored, get_cold, update_small, update_small_mirrored,
   logs_append,
   events_append, celery_update; then the cold and mirrored instances stop (their pools'
   connections would leave PostgreSQL none to spare), and the minimal 200 KB update,
   update_large and update_large_sealed run (over the same records with the same body).
   Each wrk run (ceilings included) runs ``BENCH_WARMUP`` seconds unmeasured first.

Prints the table and writes it into docs/benchmarks.md (the section between the
``make bench`` markers; everything else there is kept). Settings: BENCH_DURATION (10 s),
BENCH_WARMUP (2 s), BENCH_CONNECTIONS (32), BENCH_THREADS (2 wrk threads), WORKERS
(CPU count), BENCH_DATABASE_URL, BENCH_REDIS_URL; ``--no-write`` leaves the doc alone.
"""

import argparse
import asyncio
import os
import platform
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx

from benchmarks.ceilings import database_ceilings
from benchmarks.deployment import BenchConfig, Deployment, deployment, service_server
from benchmarks.measurement import Measurement
from benchmarks.report import Row, render, replace_section
from benchmarks.seeding import analyze, read_all, record_ids, seed_records
from benchmarks.servers import ROOT, RunningServer, uvicorn_server
from benchmarks.wrk_load import run_wrk
from domain.status import EvaluationStatus
from infrastructure.crypto.keyring import append_new_key

DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "make bench"
HEADING = "## HTTP suite (`make bench`)"
CEILING_FACTORY = "benchmarks.ceiling_app:create_app"
LIST_QUERY = "status=queued&language=python&limit=50"
LIST_PATH = f"/evaluations?{LIST_QUERY}"
# The ceiling app's routes: the same page by one statement on asyncpg, the same update.
LIST_CEILING_PATH = f"/list?{LIST_QUERY}"
LARGE_CEILING_PATH = "/large/"
SMALL_OUTPUT = 2 * 1000
LARGE_OUTPUT = 200 * 1000

HOT = "hot"
COLD = "cold"
SMALL = "small"
LARGE = "large"
LOGS = "logs"
EVENTS = "events"
CELERY = "celery"
# Seeded records per wrk thread for the sets written round-robin; read sets are shared.
PER_THREAD = {SMALL: 200, LARGE: 100, LOGS: 100, EVENTS: 100, CELERY: 200}
READ_SET = {HOT: 100, COLD: 1000}


@dataclass(frozen=True)
class Scenario:
    name: str
    script: str
    # wrk script arguments, given a tag unique to each wrk invocation.
    args: Callable[[str], list[str]]
    ceiling: str
    target: float | None = None
    instance: str = "service"


class Suite:
    def __init__(self, config: BenchConfig, deployed: Deployment, run: str) -> None:
        self.config = config
        self.deployed = deployed
        self.run = run
        self.servers: dict[str, RunningServer] = {"service": deployed.service}
        self.ceilings: dict[str, Measurement] = {}
        self.rows: list[Row] = []
        # Stops the instances no scenario needs any more, before the 200 KB updates: the
        # connections their pools keep would leave the database none to spare (its
        # max_connections is 100 here), and the minimal app's update failed with 500s.
        self.retire: Callable[[], Awaitable[None]] | None = None

    def prefix(self, record_set: str) -> str:
        return f"{self.run}-{record_set}-"

    def per_thread_args(self, record_set: str) -> Callable[[str], list[str]]:
        return lambda _tag: [self.prefix(record_set), str(PER_THREAD[record_set])]

    def scenarios(self) -> dict[str, Scenario]:
        per_thread = self.per_thread_args
        return {
            scenario.name: scenario
            for scenario in (
                Scenario("health", "static.lua", lambda _: ["/health"], "hello"),
                Scenario(
                    "get_hot",
                    "get.lua",
                    lambda _: [self.prefix(HOT), str(READ_SET[HOT])],
                    "cached",
                    target=0.70,
                ),
                Scenario("list", "static.lua", lambda _: [LIST_PATH], "list", target=0.60),
                Scenario(
                    "create",
                    "create.lua",
                    lambda tag: [f"{self.run}-create-{tag}-"],
                    "insert",
                    target=0.35,
                ),
                Scenario(
                    "create_keyed",
                    "create.lua",
                    lambda tag: [f"{self.run}-keyed-{tag}-", "keyed"],
                    "insert",
                ),
                Scenario(
                    "create_mirrored",
                    "create.lua",
                    lambda tag: [f"{self.run}-mirrored-{tag}-"],
                    "insert",
                    instance="mirrored",
                ),
                Scenario(
                    "get_cold",
                    "get.lua",
                    lambda _: [self.prefix(COLD), str(READ_SET[COLD])],
                    "select",
                    instance="cold",
                ),
                Scenario(
                    "update_small",
                    "update.lua",
                    lambda _: [*per_thread(SMALL)(""), str(SMALL_OUTPUT)],
                    "insert",
                ),
                Scenario(
                    "update_small_mirrored",
                    "update.lua",
                    lambda _: [*per_thread(SMALL)(""), str(SMALL_OUTPUT)],
                    "insert",
                    instance="mirrored",
                ),
                Scenario("logs_append", "logs.lua", per_thread(LOGS), "insert"),
                Scenario(
                    "events_append",
                    "events.lua",
                    lambda tag: [*per_thread(EVENTS)(""), f"{self.run}-{tag}-"],
                    "insert",
                ),
                Scenario("celery_update", "celery.lua", per_thread(CELERY), "insert"),
                Scenario(
                    "update_large",
                    "update.lua",
                    lambda _: [*per_thread(LARGE)(""), str(LARGE_OUTPUT)],
                    "large",
                    target=0.50,
                ),
                # ENCRYPTION=on: the cached record sealed in Redis, the 200 KB blob sealed.
                Scenario(
                    "get_hot_sealed",
                    "get.lua",
                    lambda _: [self.prefix(HOT), str(READ_SET[HOT])],
                    "cached",
                    instance="sealed",
                ),
                Scenario(
                    "update_large_sealed",
                    "update.lua",
                    lambda _: [*per_thread(LARGE)(""), str(LARGE_OUTPUT)],
                    "large",
                    instance="sealed",
                ),
            )
        }

    async def wrk(
        self, name: str, url: str, script: str, args: Callable[[str], list[str]]
    ) -> Measurement:
        """A warm-up run (tag ``w``, unmeasured), then the measured one (tag ``m``)."""
        config = self.config
        runs = [(f"{name} (warm-up)", "w", config.warmup_s), (name, "m", config.duration_s)]
        for label, tag, duration in runs if config.warmup_s > 0 else runs[1:]:
            measured = await run_wrk(
                label,
                url,
                script,
                args(tag),
                duration_s=duration,
                connections=config.connections,
                threads=config.threads,
            )
        print(
            f"  {name:<28} {measured.rate:>9,.0f} req/s  p50 {measured.p50_ms:6.2f} ms  "
            f"p99 {measured.p99_ms:7.2f} ms  errors {measured.errors}",
            flush=True,
        )
        return measured

    async def scenario(self, scenario: Scenario) -> None:
        server = self.servers[scenario.instance]
        measured = await self.wrk(scenario.name, server.url, scenario.script, scenario.args)
        self.rows.append(Row(measured, self.ceilings[scenario.ceiling], scenario.target))

    async def seed(self) -> None:
        threads = self.config.threads
        async with httpx.AsyncClient(base_url=self.deployed.service.url, timeout=30) as client:
            await seed_records(client, record_ids(self.prefix(HOT), READ_SET[HOT]))
            await seed_records(client, record_ids(self.prefix(COLD), READ_SET[COLD]))
            for record_set in (SMALL, LARGE, EVENTS, CELERY):
                ids = record_ids(self.prefix(record_set), PER_THREAD[record_set] * threads)
                await seed_records(client, ids)
            logs = record_ids(self.prefix(LOGS), PER_THREAD[LOGS] * threads)
            await seed_records(client, logs, status=EvaluationStatus.RUNNING)
            await read_all(client, record_ids(self.prefix(HOT), READ_SET[HOT]))
        await analyze(self.deployed.dsn)

    async def measure(self) -> None:
        config = self.config
        scenarios = self.scenarios()
        app = self.servers["ceiling"]
        self.ceilings["hello"] = await self.wrk(
            "hello-world (Litestar)", app.url, "static.lua", lambda _: ["/"]
        )
        self.ceilings["cached"] = await self.wrk(
            "hello-world + Redis GET", app.url, "static.lua", lambda _: ["/cached"]
        )
        for name in ("health", "get_hot", "get_hot_sealed"):
            await self.scenario(scenarios[name])
        self.ceilings["list"] = await self.wrk(
            "minimal app: list page", app.url, "static.lua", lambda _: [LIST_CEILING_PATH]
        )
        await self.scenario(scenarios["list"])
        self.ceilings["insert"], self.ceilings["select"] = await database_ceilings(
            self.deployed.dsn,
            concurrency=config.connections,
            duration_s=config.duration_s,
            select_ids=record_ids(self.prefix(COLD), READ_SET[COLD]),
        )
        for ceiling in (self.ceilings["insert"], self.ceilings["select"]):
            print(f"  {ceiling.name:<28} {ceiling.rate:>9,.0f} ops/s", flush=True)
        for name in (
            "create",
            "create_keyed",
            "create_mirrored",
            "get_cold",
            "update_small",
            "update_small_mirrored",
            "logs_append",
            "events_append",
        ):
            await self.scenario(scenarios[name])
        await self.scenario(scenarios["celery_update"])
        if self.retire is not None:
            await self.retire()
        large = scenarios["update_large"]
        self.ceilings["large"] = await self.wrk(
            "minimal app: 200 KB update",
            app.url,
            large.script,
            lambda tag: [*large.args(tag), LARGE_CEILING_PATH],
        )
        await self.scenario(large)
        await self.scenario(scenarios["update_large_sealed"])


def ceiling_server(
    deployed: Deployment, workers: int, name: str, env: dict[str, str] | None = None
) -> AbstractAsyncContextManager[RunningServer]:
    """The minimal app of the HTTP ceilings on the deployment's database and Redis prefix,
    with a file directory (``<name>-files``) and log of its own."""
    return uvicorn_server(
        CEILING_FACTORY,
        workers=workers,
        env={
            "REDIS_URL": deployed.env["REDIS_URL"],
            "REDIS_KEY_PREFIX": deployed.env["REDIS_KEY_PREFIX"],
            "CEILING_DATABASE_URL": deployed.dsn,
            "CEILING_FILE_PATH": str(deployed.workdir / f"{name}-files"),
            **(env or {}),
        },
        log=deployed.workdir / f"{name}.log",
    )


def _git(*args: str) -> str:
    result = subprocess.run(  # noqa: S603
        ["git", *args],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


async def _server_versions(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        version: str = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    return f"PostgreSQL {version.split(maxsplit=1)[0]}"


def context_line(config: BenchConfig, started: datetime, load: float, postgres: str) -> str:
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " plus uncommitted changes" if _git("status", "--porcelain") else ""
    return (
        f"Run {started:%Y-%m-%d %H:%M} UTC on commit `{commit}`{dirty} with `make bench`: "
        f"WORKERS={config.workers}, {config.connections} connections, {config.threads} wrk "
        f"threads, {config.duration_s:g} s per scenario after {config.warmup_s:g} s of "
        f"warm-up; {os.cpu_count()} cores (shared; load average {load:.2f} at start), "
        f"Python {platform.python_version()}, {postgres} (the service as a role of its own, "
        "under row-level security; the ceilings as the superuser), Redis on loopback."
    )


async def run(config: BenchConfig, *, write: bool) -> str:
    started = datetime.now(UTC)
    load = os.getloadavg()[0]
    run_tag = f"b{uuid.uuid4().hex[:6]}"
    clock = time.perf_counter()
    async with deployment(config) as deployed:
        suite = Suite(config, deployed, run_tag)
        cold_env = {**deployed.env, "ENABLE_CACHING": "false"}
        keys = deployed.workdir / "encryption-keys"
        append_new_key(keys)
        async with AsyncExitStack() as kept, AsyncExitStack() as retired:
            ceiling_app = await kept.enter_async_context(
                ceiling_server(deployed, config.workers, "ceiling")
            )
            cold = await retired.enter_async_context(
                service_server(cold_env, workers=config.workers, log=deployed.workdir / "cold.log")
            )
            mirrored = await retired.enter_async_context(
                service_server(
                    {**deployed.env, "FILE_MIRROR": "true"},
                    workers=config.workers,
                    log=deployed.workdir / "mirrored.log",
                )
            )
            sealed = await kept.enter_async_context(
                service_server(
                    {
                        **deployed.env,
                        "ENCRYPTION": "on",
                        "ENCRYPTION_KEYS_FILE": str(keys),
                        # Its own cache entries, sealed (the others' are in clear).
                        "REDIS_KEY_PREFIX": deployed.env["REDIS_KEY_PREFIX"] + "sealed:",
                    },
                    workers=config.workers,
                    log=deployed.workdir / "sealed.log",
                )
            )
            servers = {"ceiling": ceiling_app, "cold": cold, "mirrored": mirrored}
            suite.servers.update(servers, sealed=sealed)
            suite.retire = retired.aclose
            print(f"seeding ({time.perf_counter() - clock:.0f} s)", flush=True)
            await suite.seed()
            print(f"measuring ({time.perf_counter() - clock:.0f} s)", flush=True)
            await suite.measure()
        postgres = await _server_versions(deployed.dsn)
    order = ("hello", "cached", "list", "insert", "select", "large")
    ceilings = [suite.ceilings[key] for key in order]
    hello_rate = suite.ceilings["hello"].rate
    rates = {row.measurement.name: row.measurement.rate for row in suite.rows}
    extra = [
        "",
        f"Against hello-world: get_hot {rates['get_hot'] / hello_rate:.0%}, get_cold "
        f"{rates['get_cold'] / hello_rate:.0%}, list {rates['list'] / hello_rate:.0%}; "
        f"hello-world + one Redis GET is {suite.ceilings['cached'].rate / hello_rate:.0%} "
        "of hello-world.",
        f"FILE_MIRROR=true (the same scenarios on a third instance): create "
        f"{rates['create_mirrored'] / rates['create']:.0%} and update_small "
        f"{rates['update_small_mirrored'] / rates['update_small']:.0%} of the unmirrored rate.",
        f"ENCRYPTION=on (a fourth instance, each right after its unsealed twin): update_large "
        f"{rates['update_large_sealed'] / rates['update_large']:.0%} and get_hot "
        f"{rates['get_hot_sealed'] / rates['get_hot']:.0%} of the unsealed rate.",
    ]
    text = render(suite.rows, ceilings, context_line(config, started, load, postgres), extra)
    print()
    print(text)
    print(f"total {time.perf_counter() - clock:.0f} s")
    if write:
        DOC.write_text(replace_section(DOC.read_text(), SECTION, text, HEADING))
        print(f"written to {DOC.relative_to(ROOT)}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    arguments = parser.parse_args()
    asyncio.run(run(BenchConfig.from_env(), write=not arguments.no_write))


if __name__ == "__main__":
    main()
