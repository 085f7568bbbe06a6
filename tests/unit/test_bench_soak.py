import subprocess

import pytest

from benchmarks.measurement import Measurement, failures_of
from benchmarks.soak import slope_per_minute, worker_rss


def test_slope_is_per_minute() -> None:
    samples = [(0.0, 100.0), (30.0, 101.0), (60.0, 102.0), (120.0, 104.0)]

    assert slope_per_minute(samples) == pytest.approx(2.0)


def test_flat_or_too_few_samples_have_no_slope() -> None:
    assert slope_per_minute([(0.0, 5.0), (60.0, 5.0)]) == 0.0
    assert slope_per_minute([(0.0, 5.0)]) == 0.0


def test_a_process_without_children_has_no_workers() -> None:
    # A fresh process: this one may have children (servers started by session fixtures).
    lonely = subprocess.Popen(["sleep", "30"])
    try:
        assert worker_rss(lonely.pid) == {}
    finally:
        lonely.kill()
        lonely.wait()


def test_a_slices_failures_are_named_by_status_and_the_rest_as_socket_errors() -> None:
    measured = Measurement(
        name="get_hot", requests=12, duration_s=1.0, p50_ms=1.0, p99_ms=2.0,
        errors=5, statuses={200: 10, 503: 2},
    )  # fmt: skip

    assert failures_of("get_hot", measured) == {"get_hot 503": 2, "get_hot socket": 3}


def test_a_slice_without_errors_names_none() -> None:
    measured = Measurement(
        name="create", requests=3, duration_s=1.0, p50_ms=1.0, p99_ms=2.0, statuses={201: 3}
    )

    assert not failures_of("create", measured)
