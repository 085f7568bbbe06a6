"""The result line the wrk scripts print (benchmarks/wrk/common.lua), read back."""

import pytest

from benchmarks.wrk_load import WrkError, parse_wrk_output

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:40123
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    15.21ms   10.02ms 120.33ms   80.12%
  8421 requests in 10.01s, 9.12MB read
  Non-2xx or 3xx responses: 3
BENCH_RESULT {"requests": 8421, "duration_us": 10010000, "bytes": 9563213, \
"p50_us": 12800, "p90_us": 25000, "p99_us": 61500, "max_us": 120330, "mean_us": 15210.4, \
"errors": {"connect": 0, "read": 2, "write": 0, "timeout": 1, "status": 3}, \
"statuses": {"201": 8416, "409": 2, "503": 1, "302": 2}}
Requests/sec:    841.28
Transfer/sec:      0.91MB
"""


def test_rate_and_percentiles_come_from_the_result_line() -> None:
    measured = parse_wrk_output("create", WRK_OUTPUT)

    assert measured.name == "create"
    assert measured.requests == 8421
    assert measured.duration_s == pytest.approx(10.01)
    assert measured.rate == pytest.approx(841.26, abs=0.01)
    assert measured.p50_ms == pytest.approx(12.8)
    assert measured.p99_ms == pytest.approx(61.5)
    assert measured.tail_ratio == pytest.approx(61.5 / 12.8)


def test_errors_are_non_2xx_answers_plus_socket_errors_counted_once() -> None:
    measured = parse_wrk_output("create", WRK_OUTPUT)

    # 409 + 503 + 302 answers (5), read (2) and timeout (1); wrk's "status" (>= 400)
    # is part of the tally and not added again.
    assert measured.errors == 8
    assert measured.statuses == {201: 8416, 302: 2, 409: 2, 503: 1}


def test_a_clean_run_has_no_errors() -> None:
    line = (
        'BENCH_RESULT {"requests": 10, "duration_us": 1000000, "bytes": 1, "p50_us": 1, '
        '"p90_us": 1, "p99_us": 2, "max_us": 3, "mean_us": 1.0, "errors": {"connect": 0, '
        '"read": 0, "write": 0, "timeout": 0, "status": 0}, "statuses": {"200": 10}}'
    )

    assert parse_wrk_output("health", line).errors == 0


def test_an_empty_tally_is_accepted() -> None:
    line = (
        'BENCH_RESULT {"requests": 0, "duration_us": 1000000, "bytes": 0, "p50_us": 0, '
        '"p90_us": 0, "p99_us": 0, "max_us": 0, "mean_us": 0.0, "errors": {"connect": 32, '
        '"read": 0, "write": 0, "timeout": 0, "status": 0}, "statuses": {}}'
    )

    measured = parse_wrk_output("health", line)

    assert (measured.requests, measured.errors, measured.rate) == (0, 32, 0.0)


@pytest.mark.parametrize(
    "output",
    [
        "Running 10s test @ http://127.0.0.1:1\nunable to connect to 127.0.0.1:1\n",
        "BENCH_RESULT {}\nBENCH_RESULT {}\n",
        'BENCH_RESULT {"requests": "many"}\n',
        "BENCH_RESULT not json\n",
    ],
)
def test_output_without_one_readable_result_line_is_an_error(output: str) -> None:
    with pytest.raises(WrkError, match="health"):
        parse_wrk_output("health", output)
