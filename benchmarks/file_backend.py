"""``make bench-file``: the file backend (``STORAGE_BACKEND=file``) at BENCH_FILE_SIZE records.

1. A tree of that many evaluations is written in the mirror's layout (``metadata.json``,
   two events in ``events.jsonl``, a ``log.txt``), generated from a fixed seed: statuses,
   languages and runtimes drawn as ``make bench-scale`` draws them, created over 90 days.
   It is written directly (no fsync): a fixture, not the path being measured.
2. ``storage-service serve`` starts on the tree with no index: the time until ``/health``
   answers is the index built from the tree (``rebuild-database``'s path).
3. Reads over HTTP, each timed as ``make bench-scale`` times them (``scale_http``: two
   warm-ups, then BENCH_FILE_REPEAT sequential requests on one connection, every answer
   checked): the list's first page, filtered pages, a count, ``/statistics``, the storage
   overview and the file details, one record, its events and its log.
4. The tree is written again with a record of it changed behind the index's back, and
   ``fsck`` finds it.

Writes docs/bench-file.md. WORKERS=1, no Redis (the file backend's own deployment).
"""

import asyncio
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from benchmarks.scale_http import Expect, Probe, Timing, time_probes
from benchmarks.servers import ROOT, free_port
from benchmarks.service_process import running_server
from benchmarks.support import env_count, write_report
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.timeline import EvaluationEvent

DOC = ROOT / "docs" / "bench-file.md"
SEED = 23
LANGUAGES = ("python", "python", "python", "javascript", "rust", "go")
STATUSES: tuple[EvaluationStatus, ...] = (
    EvaluationStatus.COMPLETED,
    EvaluationStatus.FAILED,
    EvaluationStatus.RUNNING,
    EvaluationStatus.QUEUED,
    EvaluationStatus.CANCELLED,
)
WEIGHTS = (70, 15, 5, 5, 5)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
_encode = msgspec.json.Encoder().encode


def evaluation_id(index: int) -> str:
    return f"file-{index:08d}"


def write_tree(root: Path, count: int) -> float:
    """The tree of ``count`` evaluations; returns the seconds it took."""
    started = time.perf_counter()
    rng = random.Random(SEED)  # noqa: S311 - a benchmark's data
    for index in range(count):
        status = rng.choices(STATUSES, WEIGHTS)[0]
        created = NOW - timedelta(seconds=rng.uniform(0, 90 * 86400))
        terminal = status.is_terminal
        runtime = rng.randint(50, 60_000) if terminal else None
        evaluation = Evaluation(
            id=EvaluationId(evaluation_id(index)),
            code=f"print({index})",
            language=rng.choice(LANGUAGES),
            status=status,
            created_at=created,
            updated_at=created + timedelta(milliseconds=runtime or 10),
            started_at=created if status is not EvaluationStatus.QUEUED else None,
            completed_at=created + timedelta(milliseconds=runtime) if runtime else None,
            runtime_ms=runtime,
            metadata={"suite": f"s{index % 50}", "n": index},
            version=4,
        )
        directory = root / "evaluations" / evaluation.id
        directory.mkdir(parents=True)
        (directory / "metadata.json").write_bytes(_encode(evaluation))
        events = [
            EvaluationEvent(
                evaluation_id=evaluation.id,
                event_id=f"{evaluation.id}-{step}",
                event_type=step,
                timestamp=created + timedelta(milliseconds=n),
                message=f"{step} {index}",
            )
            for n, step in enumerate(("queued", "started"))
        ]
        (directory / "events.jsonl").write_bytes(b"".join(_encode(e) + b"\n" for e in events))
        (directory / "log.txt").write_text(f"step 1 of {index}\nstep 2 of {index}\n")
    return time.perf_counter() - started


def probes(sample: str) -> list[Probe]:
    paths = [
        ("list, first page", "/evaluations?limit=50"),
        ("list, status=failed", "/evaluations?status=failed&limit=50"),
        (
            "list, status=completed&language=rust",
            "/evaluations?status=completed&language=rust&limit=50",
        ),
        ("list with include_total", "/evaluations?status=failed&limit=50&include_total=true"),
        ("list, id_prefix", f"/evaluations?id_prefix={sample[:-2]}&limit=50"),
    ]
    found: list[Probe] = [Probe(name, (path,), None, Expect.LIST) for name, path in paths]
    for name, path in (
        ("/statistics", "/statistics"),
        ("/storage/overview", "/storage/overview"),
        ("/storage/file/details", "/storage/file/details"),
        ("GET one record", f"/evaluations/{sample}"),
        ("its events", f"/evaluations/{sample}/events"),
        ("its log", f"/evaluations/{sample}/logs"),
    ):
        found.append(Probe(name, (path,), None, Expect.JSON))
    return found


def fsck(env: dict[str, str]) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "interfaces.cli", "fsck", "--json", "--grace-minutes", "0"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    report: dict[str, object] = msgspec.json.decode(result.stdout.strip().splitlines()[-1])
    return elapsed, report


async def run() -> str:
    count = env_count("BENCH_FILE_SIZE", 100_000)
    repeat = env_count("BENCH_FILE_REPEAT", 7)
    workdir = Path(tempfile.mkdtemp(prefix="crucible-bench-file-"))
    root = workdir / "files"
    try:
        written = write_tree(root, count)
        print(f"tree of {count:,} written in {written:.1f} s", flush=True)
        port = free_port()
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in {"DATABASE_URL", "REDIS_URL", "STORAGE_BACKEND", "WORKERS"}
        } | {
            "STORAGE_BACKEND": "file",
            "FILE_STORAGE_PATH": str(root),
            "PORT": str(port),
            "WORKERS": "1",
            "LOG_LEVEL": "WARNING",
            "CACHE_WARM_ON_START": "false",
        }
        started = time.perf_counter()
        with running_server(env, port, workdir / "server.log", start_timeout_s=3600):
            indexed = time.perf_counter() - started
            print(f"index built and serving in {indexed:.1f} s", flush=True)
            base = f"http://127.0.0.1:{port}"
            timings = await asyncio.to_thread(
                time_probes, base, probes(evaluation_id(count // 2)), repeat
            )
        index_bytes = sum(
            path.stat().st_size for path in (root / "index").iterdir() if path.is_file()
        )
        tree_bytes = sum(
            path.stat().st_size for path in (root / "evaluations").rglob("*") if path.is_file()
        )
        # A copy changed behind the index's back: fsck names it, and counts the time.
        changed = root / "evaluations" / evaluation_id(7) / "metadata.json"
        record = msgspec.json.decode(changed.read_bytes(), type=Evaluation)
        changed.write_bytes(_encode(msgspec.structs.replace(record, version=record.version + 1)))
        fsck_s, fsck_report = fsck(env)
        return report(
            count, written, indexed, timings, index_bytes, tree_bytes, fsck_s, fsck_report
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report(
    count: int,
    written: float,
    indexed: float,
    timings: list[Timing],
    index_bytes: int,
    tree_bytes: int,
    fsck_s: float,
    fsck_report: dict[str, object],
) -> str:
    rows = "\n".join(
        f"| {timing.probe.name} | `{timing.probe.paths[0]}` | "
        + (
            f"{timing.p50:.2f} | {timing.p95:.2f} |"
            if not timing.broken
            else f"broken: {timing.broken} | |"
        )
        for timing in timings
    )
    index = fsck_report.get("index", {})
    stale = index.get("stale") if isinstance(index, dict) else None
    return f"""# The file backend at {count:,} evaluations (`make bench-file`)

Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} cores (shared), Python
{platform.python_version()}, `STORAGE_BACKEND=file`, WORKERS=1, no Redis. How it runs:
`benchmarks/file_backend.py`.

## The tree and its index

| | |
|---|---|
| evaluations (each: `metadata.json`, 2 events, a 2-line log) | {count:,} |
| tree written (the fixture, no fsync) | {written:.1f} s |
| index built from the tree at `serve` (none before) | {indexed:.1f} s |
| ... a rate of | {count / indexed:,.0f} evaluations/s |
| tree on disk (file sizes) | {tree_bytes / 1e6:,.1f} MB |
| index on disk (`index/records.sqlite3` and its WAL) | {index_bytes / 1e6:,.1f} MB |
| `fsck` (every `metadata.json` against the index) | {fsck_s:.1f} s |
| ... a copy changed behind the index's back, found stale | {stale} |

## Reads over HTTP

Sequential requests on one keep-alive connection, from the first byte sent to the last
byte read (ms):

| read | request | p50 | p95 |
|---|---|---|---|
{rows}

Every read comes from the index; no request walks the tree.

## What the numbers say

The reads cost what they cost on the embedded `database` configuration: the index is
the same schema and the same adapters on SQLite. The build is the slow part. It stores
each evaluation through the import's write path, 200 to a transaction: the record, each
event, the log, the version put back, an audit entry, and the search triggers of each.
At this rate a lost index of a million evaluations takes over two hours to build at
start. A bulk path (multi-row inserts, triggers after the load) would be faster, but it
would be a second write path to keep in step with the first (ADR 0028). `fsck` reads
every `metadata.json` once, in about a fifth of a millisecond each.
"""


def main() -> None:
    write_report(DOC, run())


if __name__ == "__main__":
    main()
