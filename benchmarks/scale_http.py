"""The running service, timed over HTTP, for ``make bench-scale``.

``scale_service`` deploys the service on an already loaded database as ``make bench``
does (``benchmarks/deployment.py``): the uvicorn factory, Redis under a key prefix of its
own, a temporary file store; ``WORKERS`` processes (1 unless set: the requests are
sequential). ``time_probes`` sends each probe's requests one after the other on one
keep-alive ``httpx`` connection: 2 warm-up requests, then ``repeat`` timed ones (3 when a
warm-up took over a second), each from the first byte sent to the last byte of the body
read. Every answer is checked (status, content type, a body that holds what the read
asks for), so a broken endpoint is reported as broken instead of looking fast.
"""

import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from benchmarks.deployment import service_on
from benchmarks.measurement import percentile
from benchmarks.servers import RunningServer

WARMUPS = 2
SLOW_MS = 1000.0
TIMEOUT_S = 300.0


class Expect(Enum):
    """What a correct answer to a probe looks like."""

    LIST = "a JSON page with at least one evaluation"
    JSON = "a non-empty JSON document"
    HTML = "a non-empty HTML page"
    DEEP_OFFSET = "a JSON page with evaluations, or a 4xx problem pointing to `cursor`"


@dataclass(frozen=True)
class Probe:
    """One read: its stable name (the same at every size), its requests and its target.

    ``paths`` holds one path, sent every time, or one per request (warm-ups included),
    each sent once: GET of records no request has read before.
    """

    name: str
    paths: tuple[str, ...]
    target_ms: float | None
    expect: Expect = Expect.JSON

    def path(self, number: int) -> str:
        return self.paths[number] if len(self.paths) > 1 else self.paths[0]


@dataclass
class Timing:
    """The timed requests of one probe and what was wrong with its answers, if anything."""

    probe: Probe
    times_ms: list[float] = field(default_factory=list)
    broken: str | None = None
    refused: bool = False  # deep offset answered by a problem pointing to the cursor

    @property
    def p50(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else math.nan

    @property
    def p95(self) -> float:
        """Nearest rank: with 7 requests, the slowest."""
        return percentile(sorted(self.times_ms), 95) if self.times_ms else math.nan

    @property
    def passed(self) -> bool | None:
        """None when the probe has no target; a broken answer never passes."""
        if self.broken is not None:
            return False
        if self.refused:
            return True
        return None if self.probe.target_ms is None else self.p50 < self.probe.target_ms

    @property
    def verdict(self) -> str:
        if self.broken is not None:
            return f"**broken**: {self.broken}"
        if self.refused:
            return "pass (refused, points to `cursor`)"
        verdict = {None: "", True: "pass", False: "**FAIL**"}[self.passed]
        return f"{verdict} (answered)" if self.probe.expect is Expect.DEEP_OFFSET else verdict


def check(probe: Probe, response: httpx.Response) -> tuple[str | None, bool]:
    """(What is wrong with the answer or None, whether it is the deep offset's refusal)."""
    kind = response.headers.get("content-type", "")
    if probe.expect is Expect.DEEP_OFFSET and 400 <= response.status_code < 500:
        if "problem+json" not in kind:
            return f"{response.status_code} without problem+json", False
        detail = str(response.json().get("detail", ""))
        if "cursor" not in detail:
            return f"{response.status_code}, detail not pointing to cursor: {detail[:80]}", False
        return None, True
    if not 200 <= response.status_code < 300:
        return f"{response.status_code}: {response.text[:80]}", False
    if not response.content:
        return "empty body", False
    if probe.expect is Expect.HTML:
        return (None if "text/html" in kind else f"content type {kind}"), False
    if "json" not in kind:
        return f"content type {kind}", False
    body: Any = response.json()
    if probe.expect in (Expect.LIST, Expect.DEEP_OFFSET) and not (
        isinstance(body, dict) and body.get("evaluations")
    ):
        return "no evaluations in the page", False
    return (None if body else "empty JSON"), False


def time_probe(client: httpx.Client, probe: Probe, repeat: int) -> Timing:
    timing = Timing(probe)

    def send(number: int) -> float | None:
        """The request's time in ms, or None (and ``timing.broken`` set) for a wrong answer."""
        started = time.perf_counter()
        response = client.get(probe.path(number))
        elapsed = (time.perf_counter() - started) * 1000
        timing.broken, timing.refused = check(probe, response)
        return None if timing.broken else elapsed

    slowest = 0.0
    for number in range(WARMUPS):
        elapsed = send(number)
        if elapsed is None:
            return timing
        slowest = max(slowest, elapsed)
    runs = repeat if slowest <= SLOW_MS else min(repeat, 3)
    for number in range(WARMUPS, WARMUPS + runs):
        elapsed = send(number)
        if elapsed is None:
            timing.times_ms = []
            return timing
        timing.times_ms.append(elapsed)
    return timing


def time_probes(base_url: str, probes: Sequence[Probe], repeat: int) -> list[Timing]:
    """Each probe in turn, sequentially, on one connection (blocking: run it in a thread)."""
    timings = []
    with httpx.Client(base_url=base_url, timeout=TIMEOUT_S) as client:
        for probe in probes:
            timing = time_probe(client, probe, repeat)
            timings.append(timing)
            note = timing.broken or f"p50 {timing.p50:.2f} ms, p95 {timing.p95:.2f} ms"
            print(f"  {probe.name}: {note}", flush=True, file=sys.stderr)
    return timings


def get_json(base_url: str, path: str) -> Any:
    response = httpx.get(base_url + path, timeout=TIMEOUT_S)
    response.raise_for_status()
    return response.json()


def cursor_after(base_url: str, pages: int, page: int) -> str:
    """The ``next_cursor`` after ``pages`` pages of ``page`` items, walked as a client would
    (1,000 ids a request while whole blocks of pages fit, then page by page)."""
    per_request = 1000 if 1000 % page == 0 else page
    cursor: str | None = None
    remaining = pages * page
    with httpx.Client(base_url=base_url, timeout=TIMEOUT_S) as client:
        while remaining:
            limit = per_request if remaining >= per_request else page
            query = f"/evaluations?limit={limit}&fields=id"
            response = client.get(query + (f"&cursor={quote(cursor)}" if cursor else ""))
            response.raise_for_status()
            cursor = response.json()["next_cursor"]
            if cursor is None:
                raise RuntimeError(f"the list ended {remaining} items before the deep page")
            remaining -= limit
    assert cursor is not None
    return cursor


@asynccontextmanager
async def scale_service(
    dsn: str, redis_url: str, workers: int, *, migration_dsn: str | None = None
) -> AsyncIterator[RunningServer]:
    """The service on ``dsn`` as ``make bench`` deploys it (``migration_dsn``: the tables'
    owner, for its ``ANALYZE``); its Redis keys and files go after."""
    workdir = Path(tempfile.mkdtemp(prefix="crucible-bench-scale-"))
    try:
        async with service_on(dsn, redis_url, workers, workdir, migration_dsn=migration_dsn) as (
            service,
            _env,
        ):
            yield service
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
