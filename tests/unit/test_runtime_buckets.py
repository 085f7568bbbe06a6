"""The runtime histogram's buckets: exact below 1,024 ms, then less than 0.8 % wide."""

import pytest

from application.runtime_buckets import EXACT_BELOW_MS, bucket_width, runtime_bucket

INT32_MAX = 2**31 - 1


@pytest.mark.parametrize("runtime", [0, 1, 17, 999, 1000, EXACT_BELOW_MS - 1])
def test_a_runtime_below_the_exact_limit_is_its_own_bucket(runtime: int) -> None:
    assert runtime_bucket(runtime) == runtime
    assert bucket_width(runtime) == 1


@pytest.mark.parametrize(
    ("runtime", "bucket", "width"),
    [
        (1024, 1024, 8),
        (1031, 1024, 8),
        (1032, 1032, 8),
        (2047, 2040, 8),
        (2048, 2048, 16),
        (123_456, 123_392, 512),
        (INT32_MAX, INT32_MAX - (2**23 - 1), 2**23),
    ],
)
def test_buckets_above_it(runtime: int, bucket: int, width: int) -> None:
    assert (runtime_bucket(runtime), bucket_width(runtime)) == (bucket, width)


def test_a_bucket_is_narrower_than_one_percent_of_its_runtimes() -> None:
    for runtime in [*range(EXACT_BELOW_MS, 70_000), *range(70_000, INT32_MAX, 9_973)]:
        bucket = runtime_bucket(runtime)
        assert bucket <= runtime < bucket + bucket_width(bucket)
        assert bucket_width(runtime) / runtime < 0.008


def test_the_histogram_has_a_bounded_number_of_buckets() -> None:
    # 1,024 exact values, then 128 buckets for each of the 21 powers of two up to 2^31.
    bounds, runtime = [], EXACT_BELOW_MS
    while runtime <= INT32_MAX:
        bounds.append(runtime)
        runtime += bucket_width(runtime)
    assert EXACT_BELOW_MS + len(bounds) == 3_712
    assert [runtime_bucket(bound) for bound in bounds] == bounds
