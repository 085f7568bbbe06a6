"""``make bench-profile``: py-spy flame graphs of the service under load, per scenario.

Deploys the service as ``make bench`` does (``deployment``), seeds the hot and large
records and ``ANALYZE``s them, then for each scenario (list, create, get_hot,
update_large, health; list first, before create's inserts outgrow the statistics)
drives it with wrk and, while the load runs, records every uvicorn worker with
``py-spy record --subprocesses`` twice: once as a flame graph
(``docs/profiles/<scenario>.svg``) and once as raw collapsed stacks, from which
``docs/profiles/summary.md`` lists where the CPU goes (by component and by function).
Only samples of threads holding the GIL count (``--gil``): waiting threads are left out.

py-spy is not a project dependency: ``PY_SPY`` names the command (default ``py-spy``
on PATH, else ``.tools/bin/uv tool run py-spy``). Settings: BENCH_PROFILE_DURATION (10 s
per recording), BENCH_CONNECTIONS, BENCH_THREADS, WORKERS as for ``make bench``.
"""

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.deployment import BenchConfig, deployment
from benchmarks.http_suite import LIST_PATH
from benchmarks.seeding import analyze, read_all, record_ids, seed_records
from benchmarks.servers import ROOT, RunningServer
from benchmarks.wrk_load import run_wrk

PROFILES = ROOT / "docs" / "profiles"
SAMPLE_RATE = 100
TOP = 15
HOT_RECORDS = 100
LARGE_PER_THREAD = 100
LARGE_OUTPUT = 200_000
# Components by the first segment of a frame's file (py-spy prints paths from the
# import root: ``asyncpg/pool.py``, ``threading.py``, ``interfaces/http/app.py``).
LIBRARIES = frozenset(
    {
        "litestar",
        "dishka",
        "asyncpg",
        "redis",
        "msgspec",
        "uvicorn",
        "prometheus_client",
        "logging",
        "asyncio",
        "uvloop",
        "sqlalchemy",
        "anyio",
        "httptools",
        "zstandard",
    }
)
SERVICE_LAYERS = frozenset({"domain", "application", "infrastructure", "interfaces"})
# With uvloop the loop itself is C: socket I/O, httptools parsing and the transport
# callbacks show up as time in the last Python frame, ``Runner.run``.
EVENT_LOOP = "event loop (uvloop + httptools, C)"
# Components every stack passes through (process bootstrap, the loop): no inclusive share.
GENERIC = frozenset({EVENT_LOOP, "stdlib (other)", "other", "asyncio", "uvloop"})
# uvicorn's worker bootstrap, under which the whole event loop runs.
BOOTSTRAP = frozenset({"Process.target", "asyncio_run", "subprocess_started", "Server.run"})
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True)
class Frame:
    function: str
    file: str

    @property
    def component(self) -> str:
        if self.function == "Runner.run" and self.file == "asyncio/runners.py":
            return EVENT_LOOP
        head, slash, _ = self.file.partition("/")
        if head in SERVICE_LAYERS:
            return f"service: {head}"
        if head in LIBRARIES:
            return head
        return "other" if slash else "stdlib (other)"

    def __str__(self) -> str:
        return f"{self.function} ({_short(self.file)})"


def _short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def parse_frame(text: str) -> Frame | None:
    """``function (file:line)`` as py-spy writes it; None for process/thread labels."""
    match = _FRAME.match(text.strip())
    if match is None or not match.group("file"):
        return None
    return Frame(function=match.group("function"), file=match.group("file"))


@dataclass(frozen=True)
class Profile:
    samples: int
    self_by_function: Counter[str]
    self_by_component: Counter[str]
    inclusive_by_component: Counter[str]
    inclusive_by_function: Counter[str]


def parse_collapsed(text: str) -> Profile:
    """Collapsed stacks (``frame;frame;... count`` per line, root first) into totals."""
    samples = 0
    by_function: Counter[str] = Counter()
    by_component: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    inclusive_functions: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for part in stack.split(";") if (frame := parse_frame(part))]
        if not frames:
            continue
        samples += count
        leaf = frames[-1]
        by_function[str(leaf)] += count
        by_component[leaf.component] += count
        for component in {frame.component for frame in frames}:
            inclusive[component] += count
        named = {
            str(frame)
            for frame in frames
            if frame.component not in GENERIC and frame.function not in BOOTSTRAP
        }
        for function in named:
            inclusive_functions[function] += count
    return Profile(samples, by_function, by_component, inclusive, inclusive_functions)


def summary(name: str, profile: Profile, rate: float) -> str:
    total = max(profile.samples, 1)
    lines = [
        f"### {name}",
        "",
        f"{profile.samples} samples holding the GIL; {rate:,.0f} req/s while recorded "
        "(py-spy pauses the workers to sample, so lower than unprofiled).",
        "",
        "| component | self % | inclusive % |",
        "|---|---:|---:|",
    ]
    for component, own in profile.self_by_component.most_common():
        count = profile.inclusive_by_component.get(component, 0)
        shown = "" if component in GENERIC else f"{count / total:.1%}"
        lines.append(f"| {component} | {own / total:.1%} | {shown} |")
    lines += ["", f"Top {TOP} functions by self time:", "", "| function | self % |", "|---|---:|"]
    for function, count in profile.self_by_function.most_common(TOP):
        lines.append(f"| `{function}` | {count / total:.1%} |")
    lines += [
        "",
        f"Top {TOP} functions by inclusive time (frameworks, drivers and the service):",
        "",
        "| function | inclusive % |",
        "|---|---:|",
    ]
    for function, count in profile.inclusive_by_function.most_common(TOP):
        lines.append(f"| `{function}` | {count / total:.1%} |")
    return "\n".join(lines) + "\n"


def py_spy_command() -> list[str]:
    configured = os.environ.get("PY_SPY", "").strip()
    if configured:
        return shlex.split(configured)
    found = shutil.which("py-spy")
    if found:
        return [found]
    return [str(ROOT / ".tools" / "bin" / "uv"), "tool", "run", "py-spy"]


def record(pid: int, output: Path, output_format: str, duration_s: float) -> None:
    command = [
        *py_spy_command(),
        "record",
        f"--pid={pid}",
        "--subprocesses",
        "--gil",
        f"--rate={SAMPLE_RATE}",
        f"--duration={max(1, round(duration_s))}",
        f"--format={output_format}",
        f"--output={output}",
    ]
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603


async def profile_scenario(
    name: str,
    server: RunningServer,
    script: str,
    args: list[str],
    config: BenchConfig,
    duration: float,
) -> tuple[str, float]:
    """Run the scenario's load and record it twice (SVG, then raw); (raw stacks, req/s)."""
    raw = Path(tempfile.mkstemp(suffix=".txt")[1])
    url, pid = server.url, server.pid
    load = asyncio.create_task(
        run_wrk(
            name,
            url,
            script,
            args,
            duration_s=2 * duration + 6,
            connections=config.connections,
            threads=config.threads,
        )
    )
    try:
        await asyncio.sleep(2)
        await asyncio.to_thread(record, pid, PROFILES / f"{name}.svg", "flamegraph", duration)
        await asyncio.to_thread(record, pid, raw, "raw", duration)
        measured = await load
        return await asyncio.to_thread(raw.read_text), measured.rate
    finally:
        await asyncio.to_thread(raw.unlink, missing_ok=True)


async def run(config: BenchConfig, duration: float) -> None:
    PROFILES.mkdir(parents=True, exist_ok=True)
    run_tag = f"p{os.getpid()}"
    hot = record_ids(f"{run_tag}-hot-", HOT_RECORDS)
    sections: list[str] = []
    async with deployment(config, prefix="bench_profile") as deployed:
        service = deployed.service
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            await seed_records(client, hot)
            await read_all(client, hot)
            await seed_records(
                client, record_ids(f"{run_tag}-large-", LARGE_PER_THREAD * config.threads)
            )
        await analyze(deployed.dsn)
        plans: Sequence[tuple[str, str, list[str]]] = (
            ("list", "static.lua", [LIST_PATH]),
            ("create", "create.lua", [f"{run_tag}-create-"]),
            ("get_hot", "get.lua", [f"{run_tag}-hot-", str(HOT_RECORDS)]),
            (
                "update_large",
                "update.lua",
                [f"{run_tag}-large-", str(LARGE_PER_THREAD), str(LARGE_OUTPUT)],
            ),
            ("health", "static.lua", ["/health"]),
        )
        for name, script, args in plans:
            started = time.perf_counter()
            collapsed, rate = await profile_scenario(name, service, script, args, config, duration)
            profile = parse_collapsed(collapsed)
            sections.append(summary(name, profile, rate))
            print(f"{name}: {profile.samples} samples in {time.perf_counter() - started:.0f} s")
    header = (
        "# Profiles (generated by `make bench-profile`)\n\n"
        f"Recorded {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with py-spy at {SAMPLE_RATE} Hz over "
        f"{duration:g} s per scenario, WORKERS={config.workers}, {config.connections} "
        'connections. Flame graphs: `<scenario>.svg` beside this file. "self" is '
        "the share of samples whose innermost frame is in the component or function; "
        '"inclusive" the share whose stack passes through it.\n'
    )
    text = header + "\n" + "\n".join(sections)
    (PROFILES / "summary.md").write_text(text)
    print(text)


def main() -> None:
    duration = float(os.environ.get("BENCH_PROFILE_DURATION") or 10)
    asyncio.run(run(BenchConfig.from_env(), duration))


if __name__ == "__main__":
    main()
