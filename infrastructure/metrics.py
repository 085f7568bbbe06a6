"""Prometheus instruments the adapters update: backend latency, cache lookups, blob bytes.

They live in the process-wide default registry that ``GET /metrics`` serves.
Adapters time their own I/O so the figures are the same whatever calls them.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

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


@contextmanager
def timed(backend: str, operation: str) -> Iterator[None]:
    """Observe the block's duration, failures included (a timeout is a latency too)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        BACKEND_SECONDS.labels(backend, operation).observe(time.perf_counter() - started)


def cache_lookup(hit: bool) -> None:
    CACHE_LOOKUPS.labels("hit" if hit else "miss").inc()


def blob_bytes(direction: str, count: int) -> None:
    if count:
        BLOB_BYTES.labels(direction).inc(count)
