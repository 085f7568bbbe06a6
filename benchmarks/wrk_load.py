"""Running ``wrk`` with one of the Lua scenarios in ``benchmarks/wrk`` and reading its result.

Every script loads ``common.lua``, whose ``done()`` prints one line
``BENCH_RESULT {json}`` with the request count, duration, latency percentiles, wrk's
socket-error counters and the tally of response statuses. That line is the result;
wrk's human-readable report around it is kept only for the error message when the
line is missing.
"""

import asyncio
import shutil
from pathlib import Path

import msgspec

from benchmarks.measurement import Measurement

SCRIPTS = Path(__file__).parent / "wrk"
RESULT_MARKER = "BENCH_RESULT "


class WrkError(RuntimeError):
    """wrk failed or printed no result line."""


class _SocketErrors(msgspec.Struct, frozen=True):
    connect: int
    read: int
    write: int
    timeout: int
    status: int


class _Result(msgspec.Struct, frozen=True):
    requests: int
    duration_us: int
    p50_us: int
    p99_us: int
    errors: _SocketErrors
    statuses: dict[int, int]


def parse_wrk_output(name: str, output: str) -> Measurement:
    """The measurement in wrk's output; errors = non-2xx answers + socket errors.

    wrk's own ``status`` counter (answers >= 400) is a subset of the non-2xx tally,
    so it is not added again.
    """
    lines = [line for line in output.splitlines() if line.startswith(RESULT_MARKER)]
    if len(lines) != 1:
        raise WrkError(f"{name}: expected one {RESULT_MARKER.strip()} line in:\n{output}")
    try:
        result = msgspec.json.decode(lines[0][len(RESULT_MARKER) :], type=_Result)
    except msgspec.DecodeError as exc:
        raise WrkError(f"{name}: unreadable result line ({exc}): {lines[0]}") from None
    non_2xx = sum(count for status, count in result.statuses.items() if not 200 <= status < 300)
    socket = result.errors
    return Measurement(
        name=name,
        requests=result.requests,
        duration_s=result.duration_us / 1e6,
        p50_ms=result.p50_us / 1000,
        p99_ms=result.p99_us / 1000,
        errors=non_2xx + socket.connect + socket.read + socket.write + socket.timeout,
        statuses=dict(sorted(result.statuses.items())),
    )


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk is not installed (make bench installs it with apt-get)")
    return found


async def run_wrk(
    name: str,
    url: str,
    script: str,
    args: list[str],
    *,
    duration_s: float,
    connections: int,
    threads: int,
) -> Measurement:
    """``wrk -s benchmarks/wrk/<script> <url> -- <args>`` for ``duration_s`` seconds."""
    command = [
        wrk_binary(),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(duration_s))}s",
        "--timeout=10s",
        f"--script={SCRIPTS / script}",
        url,
        "--",
        *args,
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    stdout, _ = await process.communicate()
    output = stdout.decode(errors="replace")
    if process.returncode != 0:
        raise WrkError(f"{name}: wrk exited with {process.returncode}:\n{output}")
    return parse_wrk_output(name, output)
