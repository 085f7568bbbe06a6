"""One measured load: rate, latency percentiles and errors, whatever produced it."""

import math
from collections import Counter
from collections.abc import Sequence

import msgspec


class Measurement(msgspec.Struct, frozen=True, kw_only=True):
    """``requests`` completed in ``duration_s``; latencies in milliseconds.

    ``errors`` counts every failed request: non-2xx answers plus socket errors
    (connect, read, write, timeout). ``statuses`` is the tally of answered statuses.
    """

    name: str
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    statuses: dict[int, int] = msgspec.field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def ok_rate(self) -> float:
        """2xx answers per second: a ceiling whose failures come back fast must not look
        faster for them (without a status tally, every request counts)."""
        if not self.statuses or self.duration_s <= 0:
            return self.rate
        ok = sum(count for status, count in self.statuses.items() if 200 <= status < 300)
        return ok / self.duration_s

    @property
    def tail_ratio(self) -> float:
        """p99 over p50: how far the slowest requests sit from the typical one."""
        return self.p99_ms / self.p50_ms if self.p50_ms > 0 else math.inf


def percentile(sorted_values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile of values already sorted ascending (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(0, math.ceil(percent / 100 * len(sorted_values)) - 1)
    return sorted_values[min(rank, len(sorted_values) - 1)]


def from_latencies(name: str, latencies_s: list[float], duration_s: float) -> Measurement:
    """A measurement from per-operation wall times in seconds (all successful)."""
    ordered = sorted(latencies_s)
    return Measurement(
        name=name,
        requests=len(ordered),
        duration_s=duration_s,
        p50_ms=percentile(ordered, 50) * 1000,
        p99_ms=percentile(ordered, 99) * 1000,
    )


def failures_of(scenario: str, measured: Measurement) -> Counter[str]:
    """A slice's failed requests by scenario and kind: each non-2xx status, and the socket
    errors (connect, read, write, timeout) as the rest of ``errors``."""
    answered = {
        f"{scenario} {status}": count
        for status, count in measured.statuses.items()
        if not 200 <= status < 300
    }
    socket = measured.errors - sum(answered.values())
    return Counter({**answered, f"{scenario} socket": socket} if socket else answered)


def named_failures(failed: Counter[str]) -> str:
    """``failed`` as one line: ``kind: count``, sorted."""
    return ", ".join(f"{kind}: {count}" for kind, count in sorted(failed.items()))
