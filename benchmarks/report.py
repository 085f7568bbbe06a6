"""The table of one ``make bench`` run: each scenario against its ceiling and the targets.

Targets (issues 10 and 19), all ratios measured in the same run: create >= 35 % of the
raw asyncpg INSERT rate; get_hot >= 70 % of hello-world serving one Redis GET; list
>= 60 % of the minimal app serving the same page by one asyncpg statement; update_large
>= 50 % of the minimal app doing the same 200 KB update (decode, zstd, one fsync'd file,
one ``UPDATE``); in every scenario p99 <= 5 x p50 and zero errors. The scenarios and
their targets are declared in ``http_suite``; this module renders what they measured.
"""

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.measurement import Measurement

MAX_TAIL_RATIO = 5.0
BEGIN_MARKER = "<!-- BEGIN {name}: generated, replaced on every run -->"
END_MARKER = "<!-- END {name} -->"


@dataclass(frozen=True)
class Row:
    """One scenario beside the ceiling it is compared with."""

    measurement: Measurement
    ceiling: Measurement
    target: float | None = None

    @property
    def ratio(self) -> float:
        """Of 2xx answers: an error answered fast counts on neither side."""
        ceiling = self.ceiling.ok_rate
        return self.measurement.ok_rate / ceiling if ceiling > 0 else 0.0

    @property
    def meets_ratio(self) -> bool:
        return self.target is None or self.ratio >= self.target

    @property
    def meets_tail(self) -> bool:
        return self.measurement.tail_ratio <= MAX_TAIL_RATIO

    @property
    def meets_errors(self) -> bool:
        return self.measurement.errors == 0

    @property
    def passed(self) -> bool:
        return self.meets_ratio and self.meets_tail and self.meets_errors


def _verdict(ok: bool) -> str:
    return "pass" if ok else "**FAIL**"


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _markdown(headers: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def scenario_table(rows: Sequence[Row]) -> str:
    headers = (
        "scenario",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99/p50",
        "errors",
        "ceiling",
        "% of ceiling",
        "ratio target",
        "p99 ≤ 5 p50",
        "zero errors",
    )
    body = []
    for row in rows:
        m = row.measurement
        tail = m.tail_ratio
        target = "" if row.target is None else f"≥ {row.target:.0%}: {_verdict(row.meets_ratio)}"
        body.append(
            (
                m.name,
                f"{m.rate:,.0f}",
                _ms(m.p50_ms),
                _ms(m.p99_ms),
                "∞" if math.isinf(tail) else f"{tail:.1f}",
                str(m.errors),
                row.ceiling.name,
                f"{row.ratio:.0%}",
                target,
                _verdict(row.meets_tail),
                _verdict(row.meets_errors),
            )
        )
    align = ("---", "---:", "---:", "---:", "---:", "---:", "---", "---:", "---", "---", "---")
    return _markdown(headers, body, align)


def ceiling_table(ceilings: Sequence[Measurement]) -> str:
    body = [
        (c.name, f"{c.rate:,.0f}", _ms(c.p50_ms), _ms(c.p99_ms), str(c.errors)) for c in ceilings
    ]
    headers = ("ceiling", "ops/s", "p50 ms", "p99 ms", "errors")
    return _markdown(headers, body, ("---", "---:", "---:", "---:", "---:"))


def error_notes(measurements: Sequence[Measurement]) -> list[str]:
    notes = []
    for m in measurements:
        if m.errors:
            tally = ", ".join(f"{status}: {count}" for status, count in m.statuses.items())
            notes.append(f"- {m.name}: {m.errors} errors; statuses {tally}")
    return notes


def render(
    rows: Sequence[Row], ceilings: Sequence[Measurement], context: str, extra: Sequence[str] = ()
) -> str:
    passed = sum(row.passed for row in rows)
    parts = [
        context,
        "",
        scenario_table(rows),
        "",
        f"{passed} of {len(rows)} scenarios meet every target that applies to them.",
        *extra,
        *error_notes([row.measurement for row in rows]),
        "",
        "Ceilings, measured in the same run:",
        "",
        ceiling_table(ceilings),
    ]
    if failed := error_notes(ceilings):
        parts += ["", "Ceilings that failed requests (ratios count 2xx answers only):", *failed]
    return "\n".join(parts) + "\n"


def replace_section(document: str, name: str, content: str, heading: str) -> str:
    """``document`` with the generated section ``name`` replaced by ``content``.

    The section lies between ``BEGIN``/``END`` comment markers; everything outside them is
    kept as it is. A document without the markers gets ``heading`` and the section at
    its end.
    """
    begin, end = BEGIN_MARKER.format(name=name), END_MARKER.format(name=name)
    section = f"{begin}\n{content.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: section, document, count=1)
    before = f"{document.rstrip()}\n\n" if document.strip() else ""
    return f"{before}{heading}\n\n{section}\n"
