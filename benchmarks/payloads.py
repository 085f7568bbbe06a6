"""Large payloads through the real service: streaming upload, download and ranges.

Starts ``storage-service serve`` as a subprocess on a free port (SQLite under a temp
directory, or with ``--postgres`` a throwaway PostgreSQL database it creates and drops),
creates an evaluation and then:

1. generates ``--size-mb`` MB of plausible program output (pytest lines, log lines,
   tqdm progress bars with block characters, tracebacks, JSON log lines, a few emoji)
   from a seeded generator, one 1 MiB block at a time, into a temp file (hashing it on
   the way), so neither this script nor the upload ever holds it whole and the upload's
   timing does not include the generator;
2. ``PUT /evaluations/{id}/output`` with httpx streaming the file (``content=`` an
   iterator of 1 MiB chunks, Content-Length set) while a thread samples the server's
   ``VmRSS`` (``/proc/<pid>/status``) every 50 ms;
3. ``GET /evaluations/{id}/output`` streamed twice: ``Accept-Encoding: identity`` (the
   server decompresses) and ``Accept-Encoding: zstd`` (the stored frame is passed
   through; the client decompresses to check it), both verified by sha256;
4. a few ``Range`` requests, each compared byte for byte with the generator's bytes at
   those offsets (regenerated from the seed, block by block);
5. the machine's raw file-write speed: the same number of bytes written to a temp file
   in 1 MiB chunks, then fsync.

The idle baseline RSS is the median over one second after a 1 MB warm-up round trip (so
first-use imports and pools are not counted as payload memory); the server's CPU share is
its user + system time (``/proc/<pid>/stat``) over the transfer's wall time. MB = 10^6 bytes.

Run: ``.venv/bin/python -m benchmarks.payloads [--size-mb 300] [--postgres]``
(PostgreSQL at BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres).
Everything it creates (temp directory, database, server process) is removed at the end,
whatever happens. The generator is ``program_output``, the server process and its
sampling ``service_process``, the results and their tables ``payloads_report``.
"""

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import zstandard

from benchmarks.payloads_report import MB, RangeCheck, Report, Transfer, render
from benchmarks.program_output import BLOCK_SIZE, DEFAULT_SEED, MIB, ProgramOutput
from benchmarks.servers import free_port
from benchmarks.service_process import (
    SAMPLE_INTERVAL_S,
    RssSampler,
    rss_bytes,
    running_server,
    throwaway_postgres,
)
from benchmarks.support import DEFAULT_URL

EVAL_ID = "bench_payloads_1"
WARMUP_ID = "bench_payloads_warmup"

# -- measurements ---------------------------------------------------------------------------


def generate_file(payload: ProgramOutput, path: Path) -> tuple[str, float]:
    """Write the payload to ``path`` block by block; its sha256 and the seconds it took."""
    digest = hashlib.sha256()
    started = time.perf_counter()
    with path.open("wb") as handle:
        for block in payload.blocks():
            digest.update(block)
            handle.write(block)
    return digest.hexdigest(), time.perf_counter() - started


def file_chunks(path: Path, chunk_size: int = MIB) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def raw_write_seconds(size: int, directory: Path, chunk: bytes) -> float:
    """Seconds to write ``size`` bytes to a new file in ``len(chunk)`` chunks, then fsync."""
    target = directory / "raw-write.bin"
    view = memoryview(chunk)
    started = time.perf_counter()
    with target.open("wb", buffering=0) as handle:
        left = size
        while left > 0:
            handle.write(view[: min(left, len(view))])
            left -= len(view)
        os.fsync(handle.fileno())
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


def idle_rss(pid: int, seconds: float = 1.0) -> int:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(rss_bytes(pid))
        time.sleep(SAMPLE_INTERVAL_S)
    return int(statistics.median(samples))


def upload(
    client: httpx.Client, url: str, path: Path, size: int, pid: int, baseline: int
) -> tuple[Transfer, dict[str, Any]]:
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    with RssSampler(pid) as sampler:
        started = time.perf_counter()
        response = client.put(url, content=file_chunks(path), headers=headers)
        seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"PUT {url}: {response.status_code} {response.text[:500]}")
    record: dict[str, Any] = response.json()
    transfer = Transfer(seconds, sampler.peak - baseline, size, True, sampler.cpu)
    return transfer, record


def download(
    client: httpx.Client, url: str, expected_sha256: str, pid: int, baseline: int, *, zstd: bool
) -> Transfer:
    """Stream the payload; with ``zstd`` ask for the stored frame and decompress here."""
    digest = hashlib.sha256()
    wire = 0
    headers = {"Accept-Encoding": "zstd" if zstd else "identity"}
    decompressor = zstandard.ZstdDecompressor().decompressobj() if zstd else None
    with RssSampler(pid) as sampler:
        started = time.perf_counter()
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"GET {url}: {response.status_code}")
            encoding = response.headers.get("content-encoding", "identity")
            if zstd and encoding != "zstd":
                raise RuntimeError(f"GET {url} with Accept-Encoding: zstd got {encoding!r}")
            for chunk in response.iter_raw(MIB):
                wire += len(chunk)
                digest.update(decompressor.decompress(chunk) if decompressor else chunk)
        seconds = time.perf_counter() - started
    ok = digest.hexdigest() == expected_sha256
    return Transfer(seconds, sampler.peak - baseline, wire, ok, sampler.cpu)


def range_checks(client: httpx.Client, url: str, payload: ProgramOutput) -> list[RangeCheck]:
    size = payload.size
    boundary = min(BLOCK_SIZE, size // 2)
    middle = size // 2
    cases: list[tuple[str, int, int]] = [  # header, expected [start, end)
        ("bytes=0-99", 0, min(100, size)),
        (f"bytes={boundary - 50}-{boundary + 49}", boundary - 50, boundary + 50),
        (f"bytes={middle}-{middle + 65_535}", middle, middle + 65_536),
        ("bytes=-1000", size - 1000, size),
        (f"bytes={size - 5000}-", size - 5000, size),
    ]
    checks = []
    for header, start, end in cases:
        started = time.perf_counter()
        response = client.get(url, headers={"Range": header, "Accept-Encoding": "identity"})
        millis = (time.perf_counter() - started) * 1000
        expected = payload.read(start, end)
        content_range = response.headers.get("content-range", "")
        exact = (
            response.status_code == 206
            and response.content == expected
            and content_range == f"bytes {start}-{end - 1}/{size}"
        )
        checks.append(
            RangeCheck(
                header, response.status_code, content_range, len(response.content), millis, exact
            )
        )
    started = time.perf_counter()
    response = client.get(url, headers={"Range": f"bytes={size}-"})
    millis = (time.perf_counter() - started) * 1000
    content_range = response.headers.get("content-range", "")
    checks.append(
        RangeCheck(
            f"bytes={size}-",
            response.status_code,
            content_range,
            len(response.content),
            millis,
            response.status_code == 416 and content_range == f"bytes */{size}",
        )
    )
    return checks


# -- the run --------------------------------------------------------------------------------


def run(size: int, *, postgres: bool, seed: int, admin_url: str) -> Report:
    workdir = Path(tempfile.mkdtemp(prefix="bench_payloads_"))
    try:
        with throwaway_postgres(admin_url) if postgres else _sqlite(workdir) as database_url:
            return _run_in(workdir, database_url, size, seed, postgres=postgres)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _sqlite(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'storage.db'}"


def _run_in(workdir: Path, database_url: str, size: int, seed: int, *, postgres: bool) -> Report:
    payload = ProgramOutput(size, seed)
    payload_path = workdir / "payload.txt"
    sha256, generate_seconds = generate_file(payload, payload_path)
    raw_seconds = raw_write_seconds(size, workdir, payload.block(0) if size else b"\n")

    port = free_port()
    files = workdir / "files"
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": database_url,
        "FILE_STORAGE_PATH": str(files),
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    base = f"http://127.0.0.1:{port}"
    with (
        running_server(env, port, workdir / "server.log") as pid,
        httpx.Client(base_url=base, timeout=httpx.Timeout(600.0, connect=10.0)) as client,
    ):
        for identifier in (WARMUP_ID, EVAL_ID):
            created = client.post(
                "/evaluations",
                json={"id": identifier, "code": "print('bench')", "language": "python"},
            )
            if created.status_code != 200:
                raise RuntimeError(f"create {identifier}: {created.status_code} {created.text}")
        _warm_up(client, ProgramOutput(MB, seed + 1))
        baseline = idle_rss(pid)

        url = f"/evaluations/{EVAL_ID}/output"
        up, record = upload(client, url, payload_path, size, pid, baseline)
        storage = record.get("_storage_info", {})
        identity = download(client, url, sha256, pid, baseline, zstd=False)
        compressed = download(client, url, sha256, pid, baseline, zstd=True)
        ranges = range_checks(client, url, payload)
    [blob] = (files / "evaluations" / EVAL_ID).glob("output.*.txt.zst")
    return Report(
        size=size,
        configuration="PostgreSQL" if postgres else "SQLite",
        generate_seconds=generate_seconds,
        raw_write_seconds=raw_seconds,
        baseline_rss=baseline,
        upload=up,
        download_identity=identity,
        download_zstd=compressed,
        on_disk=blob.stat().st_size if blob.exists() else 0,
        record_size=int(storage.get("output_size") or 0),
        record_location=str(storage.get("output_location")),
        record_compressed=bool(storage.get("output_compressed")),
        ranges=ranges,
    )


def _warm_up(client: httpx.Client, payload: ProgramOutput) -> None:
    url = f"/evaluations/{WARMUP_ID}/output"
    response = client.put(url, content=payload.blocks(), headers={"Content-Type": "text/plain"})
    if response.status_code != 200:
        raise RuntimeError(f"warm-up PUT: {response.status_code} {response.text[:500]}")
    got = client.get(url, headers={"Accept-Encoding": "identity"}).content
    if got != payload.read(0, payload.size):
        raise RuntimeError("warm-up round trip did not return the uploaded bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mb", type=float, default=300.0, help="payload size, MB (10^6)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--postgres", action="store_true", help="run on a throwaway PostgreSQL database"
    )
    args = parser.parse_args()
    size = int(args.size_mb * MB)
    if size <= BLOCK_SIZE:
        parser.error("--size-mb must be larger than 1.05 (one 1 MiB block)")
    admin_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    print(
        f"Python {platform.python_version()}, nproc {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.2f}, zstandard {zstandard.__version__}\n",
        flush=True,
    )
    report = run(size, postgres=args.postgres, seed=args.seed, admin_url=admin_url)
    print(render(report))
    failed = [check.header for check in report.ranges if not check.exact]
    transfers = (report.upload, report.download_identity, report.download_zstd)
    if failed or not all(t.sha256_ok for t in transfers):
        print(f"\nFAILED: sha256 or ranges {failed}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
