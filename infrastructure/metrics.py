"""Prometheus instruments the adapters update: backend latency, cache lookups, blob bytes,
the failover journal.

They live in the process-wide default registry that ``GET /metrics`` serves.
Adapters time their own I/O so the figures are the same whatever calls them.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from prometheus_client import Counter, Gauge, Histogram

BACKEND_SECONDS = Histogram(
    "crucible_storage_backend_operation_seconds",
    "Time spent in one backend operation",
    ["backend", "operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
CACHE_LOOKUPS = Counter(
    "crucible_storage_cache_lookups_total", "Record cache lookups by result", ["result"]
)
BLOB_BYTES = Counter(
    "crucible_storage_blob_bytes_total",
    "Bytes written to or read from the blob store",
    ["direction"],
)

JOURNAL_WRITES = Counter(
    "crucible_storage_failover_journaled_writes_total",
    "Writes acknowledged into the failover journal because the primary was unavailable",
)
JOURNAL_PENDING = Gauge(
    "crucible_storage_failover_pending_entries",
    "Journal entries waiting for replay into the primary (as this process last read them)",
)
JOURNAL_OLDEST_AGE = Gauge(
    "crucible_storage_failover_oldest_pending_age_seconds",
    "Age of the oldest journal entry waiting for replay (0 when none)",
)
PRIMARY_UP = Gauge(
    "crucible_storage_failover_primary_up",
    "1 while the primary takes writes, 0 while writes go to the failover journal",
)
PRIMARY_UP.set(1)
OPEN_STREAMS = Gauge(
    "crucible_storage_open_streams",
    "Server-sent event streams (changes and logs) this process holds open",
)


@cache
def _backend_seconds(backend: str, operation: str) -> Histogram:
    # One series object per label pair, found once: ``labels()`` validates and locks per call.
    return BACKEND_SECONDS.labels(backend, operation)


_CACHE_HITS = CACHE_LOOKUPS.labels("hit")
_CACHE_MISSES = CACHE_LOOKUPS.labels("miss")


@contextmanager
def timed(backend: str, operation: str) -> Iterator[None]:
    """Observe the block's duration, failures included (a timeout is a latency too)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        _backend_seconds(backend, operation).observe(time.perf_counter() - started)


def cache_lookup(hit: bool) -> None:
    (_CACHE_HITS if hit else _CACHE_MISSES).inc()


def blob_bytes(direction: str, count: int) -> None:
    if count:
        BLOB_BYTES.labels(direction).inc(count)


def journaled() -> None:
    JOURNAL_WRITES.inc()


def failover_state(*, primary_up: bool, pending: int, oldest_age_s: float) -> None:
    PRIMARY_UP.set(1 if primary_up else 0)
    JOURNAL_PENDING.set(pending)
    JOURNAL_OLDEST_AGE.set(oldest_age_s)
