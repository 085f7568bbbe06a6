"""The generated section of docs/bench-scale.md: growth tables, then each size in detail."""

import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from benchmarks.scale_http import Timing
from benchmarks.scale_plans import Read


@dataclass(frozen=True)
class PlannerState:
    """What PostgreSQL knows about ``evaluations`` for planning, read from its catalogs."""

    column_statistics: int  # rows of pg_stats for the table: 0 means never analyzed
    last_analyze: datetime | None
    modified_since_analyze: int


@dataclass
class Unanalyzed:
    """The list over HTTP after a bulk append, before the loader's ANALYZE."""

    timings: list[Timing]
    settle_s: float
    before: PlannerState  # when the service started
    after: PlannerState  # once the reads were timed

    @property
    def analyzed_by_service(self) -> bool:
        return self.after.last_analyze is not None and (
            self.before.last_analyze is None or self.after.last_analyze > self.before.last_analyze
        )


@dataclass
class SizeRun:
    """Everything measured at one size of the table."""

    evaluations: int
    events: int
    load_s: float
    analyze_s: float
    database_bytes: int
    free_bytes: int
    unanalyzed: Unanalyzed
    http: list[Timing]
    values: dict[str, str]  # the concrete parameters behind the probes' names
    load_average: float = 0.0  # the machine's 1-minute load once the HTTP reads were timed
    server: list[Read] = field(default_factory=list)
    server_error: str | None = None


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def _gb(value: int) -> str:
    return f"{value / 1e9:.2f} GB"


def _target(target_ms: float | None) -> str:
    return "" if target_ms is None else f"< {target_ms:g} ms"


def _cell(timing: Timing) -> str:
    if timing.broken is not None:
        return "**broken**"
    text = _ms(timing.p50) + (" (refused)" if timing.refused else "")
    return f"**{text}**" if timing.passed is False else text


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """A markdown table; ``align`` has one letter a column, ``l`` or ``r``."""
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---:" if side == "r" else "---" for side in align) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def growth_http(runs: Sequence[SizeRun]) -> list[str]:
    sizes = [f"{run.evaluations:,}" for run in runs]
    rows = []
    by_name = [{timing.probe.name: timing for timing in run.http} for run in runs]
    for timing in runs[-1].http:
        name = timing.probe.name
        cells = [_cell(timings[name]) if name in timings else "-" for timings in by_name]
        rows.append([name, _target(timing.probe.target_ms), *cells])
    rows.append(["database size (`pg_database_size`)", "", *(_gb(r.database_bytes) for r in runs)])
    return _table(["read (p50 ms over HTTP)", "target", *sizes], rows, "ll" + "r" * len(runs))


def growth_server(runs: Sequence[SizeRun]) -> list[str]:
    measured = [run for run in runs if run.server]
    if not measured:
        return []
    rows = []
    for index, read in enumerate(measured[-1].server):
        cells = [_ms(run.server[index].server_ms) for run in measured]
        rows.append([read.name, _target(read.target_ms), *cells])
    sizes = [f"{run.evaluations:,}" for run in measured]
    headers = ["read (server-side p50 ms)", "target", *sizes]
    return _table(headers, rows, "ll" + "r" * len(measured))


def _state(state: PlannerState) -> str:
    analyzed = f"{state.last_analyze:%H:%M:%S}" if state.last_analyze else "never"
    return (
        f"{state.column_statistics} column statistics, last ANALYZE {analyzed}, "
        f"{state.modified_since_analyze:,} rows changed since"
    )


def unanalyzed(runs: Sequence[SizeRun]) -> list[str]:
    rows = []
    for run in runs:
        after = {timing.probe.name: timing for timing in run.http}
        for timing in run.unanalyzed.timings:
            analyzed = after.get(timing.probe.name)
            rows.append(
                [
                    f"{run.evaluations:,}",
                    timing.probe.name,
                    _ms(timing.p50),
                    _ms(timing.p95),
                    _target(timing.probe.target_ms),
                    timing.verdict,
                    _ms(analyzed.p50) if analyzed else "-",
                ]
            )
    headers = ["evaluations", "read", "p50 ms", "p95 ms", "target", "result", "after ANALYZE p50"]
    lines = _table(headers, rows, "rlrrllr")
    lines.append("")
    for run in runs:
        state = run.unanalyzed
        verdict = (
            "the service ran ANALYZE on `evaluations` meanwhile"
            if state.analyzed_by_service
            else "nothing analyzed `evaluations` meanwhile"
        )
        lines.append(
            f"- {run.evaluations:,}: at the service's start {_state(state.before)}; "
            f"{state.settle_s:g} s later {_state(state.after)}: {verdict}."
        )
    return lines


def http_detail(run: SizeRun) -> list[str]:
    rows = [
        [
            timing.probe.name,
            _ms(timing.p50),
            _ms(timing.p95),
            str(len(timing.times_ms)),
            _target(timing.probe.target_ms),
            timing.verdict,
        ]
        for timing in run.http
    ]
    lines = _table(["read", "p50 ms", "p95 ms", "runs", "target", "result"], rows, "lrrrll")
    passed = sum(timing.passed is True for timing in run.http)
    judged = sum(timing.passed is not None for timing in run.http)
    lines += ["", f"{passed} of {judged} reads with a target meet it."]
    values = "; ".join(f"{name} = `{value}`" for name, value in run.values.items())
    lines += ["", f"Parameters: {values}."]
    return lines


def server_detail(run: SizeRun) -> list[str]:
    if run.server_error is not None:
        return [f"Server-side measurement failed: `{run.server_error}`."]
    rows = []
    for read in run.server:
        verdict = {None: "", True: "pass", False: "**FAIL**"}[read.passed]
        rows.append(
            [
                read.name,
                str(len(read.statements)),
                f"{read.server_ms:.2f}",
                f"{read.client_ms:.1f}",
                _target(read.target_ms),
                verdict,
            ]
        )
    headers = ["read", "statements", "server-side p50 ms", "adapter ms", "target", "result"]
    return _table(headers, rows, "lrrrll")


def plans(reads: Sequence[Read]) -> list[str]:
    lines: list[str] = []
    for read in reads:
        lines += [f"#### {read.name}", ""]
        for statement, times, plan in zip(read.statements, read.times_ms, read.plans, strict=True):
            lines += [
                f"p50 {statistics.median(times):.2f} ms:",
                "",
                "```sql",
                statement.sql.strip(),
                "```",
                "",
                "```",
                plan,
                "```",
                "",
            ]
    return lines


def render(runs: Sequence[SizeRun], *, repeat: int, workers: int, events_max: int) -> str:
    last = runs[-1]
    sizes = " → ".join(f"{run.evaluations:,}" for run in runs)
    lines = [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: one database grown to {sizes} "
        f"evaluations (10 events each, at most {events_max:,} in all: {last.events:,} at "
        f"the end), the service under uvicorn with WORKERS={workers} on PostgreSQL + Redis, "
        "connected as a role of its own under row-level security (ADR 0032). "
        f"Over HTTP: p50 and p95 (nearest rank) of {repeat} sequential requests after 2 "
        "warm-ups (3 when a warm-up took over a second), body read included. Server-side: "
        "planning + execution from `EXPLAIN (ANALYZE, TIMING OFF)` as the tables' owner "
        "(no policy), p50 of as many runs.",
        "",
        "### Growth over HTTP",
        "",
        *growth_http(runs),
        "",
        "Bold: over its target. The same rows at each size are in the sections below.",
        "",
        "### Growth server-side",
        "",
        *growth_server(runs),
        "",
        "### Without planner statistics",
        "",
        "Right after each bulk append (COPY, indexes rebuilt, no ANALYZE yet; autovacuum is "
        f"off on this server) the service is started and left running for "
        f"{last.unanalyzed.settle_s:g} s, then the list is read; the last column is the same "
        "read once the loader has run `VACUUM ANALYZE`.",
        "",
        *unanalyzed(runs),
        "",
    ]
    for run in reversed(runs):
        lines += [
            f"### At {run.evaluations:,} evaluations and {run.events:,} events",
            "",
            f"Loaded in {run.load_s:.0f} s (appended to the size before), `VACUUM ANALYZE` "
            f"{run.analyze_s:.0f} s; database {_gb(run.database_bytes)}, "
            f"{_gb(run.free_bytes)} free on its disk after. Load average (1 min) when the "
            f"HTTP reads ended: {run.load_average:.1f} on {os.cpu_count()} cores.",
            "",
            *http_detail(run),
            "",
            *server_detail(run),
            "",
        ]
    if last.server:
        lines += [
            f"### Plans at {last.evaluations:,} evaluations",
            "",
            "From one `EXPLAIN (ANALYZE, BUFFERS)` run each (its per-node timing makes big "
            "scans look slower than the tables' figures).",
            "",
            *plans(last.server),
        ]
    return "\n".join(lines)
