"""``make bench-contention``'s table rows: each round's failures named by status."""

from benchmarks.contention import row
from benchmarks.measurement import Measurement


def test_a_round_names_its_failures_by_scenario_and_status() -> None:
    measured = Measurement(
        name="celery_update",
        requests=1000,
        duration_s=10.0,
        p50_ms=24.6,
        p99_ms=865.5,
        errors=3,
        statuses={200: 997, 500: 2},
    )
    assert row(2, measured) == (
        "| 2 | celery_update | 100 | 24.6 | 865.5 | celery_update 500: 2, celery_update socket: 1 |"
    )


def test_a_clean_round_says_none() -> None:
    measured = Measurement(
        name="update_small", requests=500, duration_s=10.0, p50_ms=3.0, p99_ms=9.5
    )
    assert row(1, measured).endswith("| none |")
