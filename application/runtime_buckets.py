"""The buckets of the runtime histogram the SQL backends keep (migration 0006).

Runtimes below ``EXACT_BELOW_MS`` keep their own bucket, so percentiles there are
exact. Above, each power-of-two range ``[2^m, 2^(m+1))`` is cut into ``SUB_BUCKETS``
equal buckets: a bucket is less than 0.8 % as wide as the runtimes it holds, and the
histogram never has more than about 3,700 rows whatever the spread of runtimes
(``docs/decisions/0017-bucketed-runtime-histogram.md``). A percentile read from it is
the lower bound of the bucket holding the exact nearest-rank value.
"""

EXACT_BELOW_MS = 1024
SUB_BUCKETS = 128
_SUB_BITS = SUB_BUCKETS.bit_length() - 1


def bucket_width(runtime_ms: int) -> int:
    """How many milliseconds the bucket of ``runtime_ms`` spans (1 below a second)."""
    if runtime_ms < EXACT_BELOW_MS:
        return 1
    return 1 << (runtime_ms.bit_length() - 1 - _SUB_BITS)


def runtime_bucket(runtime_ms: int) -> int:
    """The lower bound of the bucket ``runtime_ms`` is counted in."""
    width = bucket_width(runtime_ms)
    return runtime_ms - runtime_ms % width
