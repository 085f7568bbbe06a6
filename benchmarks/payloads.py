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
whatever happens.
"""

import argparse
import asyncio
import hashlib
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import zstandard

from benchmarks.support import DEFAULT_URL, create_database, drop_database

MB = 1_000_000
MIB = 1024 * 1024
BLOCK_SIZE = MIB
DEFAULT_SEED = 20250101
EVAL_ID = "bench_payloads_1"
WARMUP_ID = "bench_payloads_warmup"
SAMPLE_INTERVAL_S = 0.05

# -- deterministic program output, addressable by block -----------------------------------

_MODULES = ("data", "model", "train", "metrics", "io_utils", "scheduler", "tokenizer")
_FUNCS = ("load_batch", "forward", "step", "evaluate", "parse_row", "collate", "run_epoch")
_WORDS = ("alpha", "beta", "gamma", "delta", "user_42", "cfg", "shard-07", "NaN", "café")
_LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "INFO", "WARNING", "ERROR")
_MESSAGES = (
    "checkpoint saved to /ckpt/{w}/step_{n}.pt",
    "loaded {n} rows from shard {w}",
    "retrying request {n} after timeout",
    "cache miss for key {w}:{n}",
    "gradient norm {f:.4f} exceeds clip value",
    "evaluation of {w} finished in {f:.2f}s",
)
_CODE = (
    "result = fn(*args, **kwargs)",
    "value = int(row[column])",
    "return self.layers[index](x)",
    "loss = criterion(outputs, targets)",
    "batch = next(iterator)",
    "assert shape == expected, msg",
)
_ERRORS = (
    "ValueError: invalid literal for int() with base 10: '{w}'",
    "KeyError: '{w}'",
    "ZeroDivisionError: division by zero",
    "AssertionError: expected ({n}, 3) but got (3, {n})",
    "RuntimeError: CUDA out of memory. Tried to allocate {f:.2f} GiB",
)
_BAR_PARTS = " ▏▎▍▌▋▊▉"
_BAR_WIDTH = 20


class ProgramOutput:
    """``size`` bytes of UTF-8 program output from ``seed``, built in 1 MiB blocks.

    Block ``i`` depends only on ``(seed, i)`` and its length, so any byte range can be
    regenerated without the blocks before it. Each block is whole lines, padded to its
    exact length with a pytest-style ``====`` separator line, so no block boundary (and
    no end of payload) splits a multi-byte character.
    """

    def __init__(self, size: int, seed: int = DEFAULT_SEED, block_size: int = BLOCK_SIZE) -> None:
        if size < 0 or block_size < 64:
            raise ValueError("size must be >= 0 and block_size >= 64")
        self.size = size
        self.seed = seed
        self.block_size = block_size

    @property
    def block_count(self) -> int:
        return -(-self.size // self.block_size)

    def blocks(self) -> Iterator[bytes]:
        for index in range(self.block_count):
            yield self.block(index)

    def block(self, index: int) -> bytes:
        start = index * self.block_size
        length = min(self.block_size, self.size - start)
        if length <= 0:
            raise IndexError(index)
        rng = random.Random(self.seed * 1_000_003 + index)  # noqa: S311 - test data
        return _fill(rng, length, index)

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``, regenerating only the blocks that cover them."""
        start, end = max(0, start), min(end, self.size)
        if start >= end:
            return b""
        first, last = start // self.block_size, (end - 1) // self.block_size
        data = b"".join(self.block(i) for i in range(first, last + 1))
        offset = first * self.block_size
        return data[start - offset : end - offset]


def _fill(rng: random.Random, length: int, index: int) -> bytes:
    """Whole lines up to ``length`` bytes, then a ``====`` line padding to exactly it.

    One 64-bit draw per line, sliced into the line's choices, keeps the generator fast
    enough (tens of MB/s) that producing the payload never dominates a run.
    """
    clock_ms = (1_735_732_800 + index * 60) * 1000
    stamp_second = clock_ms // 1000
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp_second))
    parts: list[bytes] = []
    used = 0
    while True:
        bits = rng.getrandbits(64)
        kind = bits & 0xFF
        bits >>= 8
        if kind < 77:
            clock_ms += bits & 0x3F
            if clock_ms // 1000 != stamp_second:
                stamp_second = clock_ms // 1000
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp_second))
            text = _log_line(bits >> 6, f"{stamp},{clock_ms % 1000:03d}")
        elif kind < 141:
            text = _pytest_line(bits)
        elif kind < 192:
            text = _progress_line(bits)
        elif kind < 230:
            text = _json_line(bits, stamp, rng.getrandbits(64))
        elif kind < 248:
            text = _metrics_line(bits)
        elif kind < 255:
            text = _traceback(rng)
        else:
            text = ("🚀 launching worker {n}\n", "✓ shard {n} verified\n")[bits & 1].format(
                n=(bits >> 1) % 1000
            )
        encoded = text.encode()
        if used + len(encoded) + 1 > length:  # the padding line needs at least its newline
            break
        parts.append(encoded)
        used += len(encoded)
    parts.append(b"=" * (length - used - 1) + b"\n")
    return b"".join(parts)


def _pick(options: Sequence[str], bits: int) -> str:
    return options[bits % len(options)]


def _log_line(bits: int, stamp: str) -> str:
    message = _pick(_MESSAGES, bits).format(
        w=_pick(_WORDS, bits >> 3), n=(bits >> 7) % 100_000, f=((bits >> 24) & 0xFFFF) / 1311
    )
    level = _pick(_LEVELS, bits >> 40)
    return f"{stamp} {level:<7} crucible.{_pick(_MODULES, bits >> 44)}: {message}\n"


_OUTCOMES = ("PASSED",) * 28 + ("FAILED", "SKIPPED", "SKIPPED", "XFAIL")


def _pytest_line(bits: int) -> str:
    return (
        f"tests/test_{_pick(_MODULES, bits)}.py::test_{_pick(_FUNCS, bits >> 3)}"
        f"[{_pick(_WORDS, bits >> 6)}-{(bits >> 10) & 63}] {_pick(_OUTCOMES, bits >> 16)} "
        f"[{(bits >> 21) % 101:3d}%]\n"
    )


_TOTALS = (100, 500, 1000, 2500)


def _progress_line(bits: int) -> str:
    total = _TOTALS[bits & 3]
    done = (bits >> 2) % (total + 1)
    eighths = done * _BAR_WIDTH * 8 // total
    full, part = divmod(eighths, 8)
    bar = "█" * full + (_BAR_PARTS[part] if full < _BAR_WIDTH else "")
    elapsed = (bits >> 14) % 3600
    return (
        f"Epoch {(bits >> 26) % 20 + 1}/20: {done * 100 // total:3d}%|{bar:<{_BAR_WIDTH}}| "
        f"{done}/{total} [{elapsed // 60:02d}:{elapsed % 60:02d}<00:{(bits >> 31) % 60:02d}, "
        f"{((bits >> 29) & 0x1FFF) / 91:.2f}it/s, loss={((bits >> 42) & 0x3FFF) / 5461:.4f}]\n"
    )


def _json_line(bits: int, stamp: str, request_id: int) -> str:
    return (
        f'{{"ts":"{stamp}","level":"{_pick(_LEVELS, bits)}",'
        f'"logger":"crucible.{_pick(_MODULES, bits >> 3)}","msg":"{_pick(_FUNCS, bits >> 6)} done",'
        f'"request_id":"{request_id:016x}","duration_ms":{((bits >> 9) & 0xFFFFF) / 997:.3f},'
        f'"items":{(bits >> 29) % 5000}}}\n'
    )


def _metrics_line(bits: int) -> str:
    return (
        f"{bits % 51:5d} {(bits >> 6) % 20_000 * 50:7d} {((bits >> 21) & 0xFFFF) / 21_000:9.5f} "
        f"{0.3 + ((bits >> 37) & 0x3FF) / 1500:7.4f} "
        f"{3e-4 * (((bits >> 47) & 0x1F) + 1) / 32:9.2e} "
        f"{((bits >> 44) & 0xFFF) / 1700:7.3f}\n"
    )


def _traceback(rng: random.Random) -> str:
    lines = ["Traceback (most recent call last):"]
    for _ in range(rng.randint(3, 8)):
        lines.append(
            f'  File "/app/src/crucible/{rng.choice(_MODULES)}.py", line {rng.randint(1, 900)}, '
            f"in {rng.choice(_FUNCS)}"
        )
        lines.append(f"    {rng.choice(_CODE)}")
    lines.append(
        rng.choice(_ERRORS).format(
            w=rng.choice(_WORDS), n=rng.randint(1, 512), f=rng.uniform(0.1, 8)
        )
    )
    return "\n".join(lines) + "\n"


# -- the server process and its memory ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` from ``/proc/<pid>/status`` (Linux)."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class RssSampler:
    """Samples a process's RSS every 50 ms in a thread while the ``with`` block runs."""

    pid: int
    interval: float = SAMPLE_INTERVAL_S
    samples: list[int] = field(default_factory=list)
    cpu: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "RssSampler":
        self.cpu = -cpu_seconds(self.pid)
        self.samples.append(rss_bytes(self.pid))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with suppress(OSError, RuntimeError):
            self.samples.append(rss_bytes(self.pid))
            self.cpu += cpu_seconds(self.pid)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return

    @property
    def peak(self) -> int:
        return max(self.samples)


@contextmanager
def running_server(env: dict[str, str], port: int, log_path: Path) -> Iterator[int]:
    """``storage-service serve`` in a subprocess; yields its pid once /health answers 200."""
    executable = Path(sys.executable).parent / "storage-service"
    command = (
        [str(executable), "serve"]
        if executable.exists()
        else [
            sys.executable,
            "-m",
            "interfaces.cli",
            "serve",
        ]
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            _wait_healthy(process, f"http://127.0.0.1:{port}", log_path)
            yield process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(process: "subprocess.Popen[bytes]", base: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        with suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the server did not start:\n" + log_path.read_text(errors="replace"))
        time.sleep(0.2)


@contextmanager
def throwaway_postgres(admin_url: str) -> Iterator[str]:
    """A new empty database on ``admin_url``'s server, dropped on exit."""
    dsn = asyncio.run(create_database(admin_url, "bench_payloads"))
    try:
        yield dsn
    finally:
        asyncio.run(drop_database(admin_url, dsn))


# -- measurements ---------------------------------------------------------------------------


@dataclass
class Transfer:
    seconds: float
    peak_rss_growth: int
    wire_bytes: int
    sha256_ok: bool
    server_cpu: float


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


@dataclass
class RangeCheck:
    header: str
    status: int
    content_range: str
    length: int
    millis: float
    exact: bool


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


@dataclass
class Report:
    size: int
    configuration: str
    generate_seconds: float
    raw_write_seconds: float
    baseline_rss: int
    upload: Transfer
    download_identity: Transfer
    download_zstd: Transfer
    on_disk: int
    record_size: int
    record_location: str
    record_compressed: bool
    ranges: list[RangeCheck]


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


# -- output ---------------------------------------------------------------------------------


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _mb(value: float) -> str:
    return f"{value / MB:.1f}"


def _rate(size: int, seconds: float) -> str:
    return f"{size / MB / seconds:.0f}" if seconds > 0 else "n/a"


def render(report: Report) -> str:
    size = report.size
    transfers = (
        ("upload (PUT, streamed, Content-Length)", report.upload),
        ("download (GET, identity: server decompresses)", report.download_identity),
        ("download (GET, Accept-Encoding: zstd, passthrough)", report.download_zstd),
    )
    rows = [
        [
            name,
            f"{transfer.seconds:.2f}",
            _rate(size, transfer.seconds),
            _mb(transfer.wire_bytes),
            _mb(transfer.peak_rss_growth),
            f"{100 * transfer.server_cpu / transfer.seconds:.0f} %",
            "yes" if transfer.sha256_ok else "**NO**",
        ]
        for name, transfer in transfers
    ]
    rows.append(
        [
            "raw file write (1 MiB chunks + fsync)",
            f"{report.raw_write_seconds:.2f}",
            _rate(size, report.raw_write_seconds),
            _mb(size),
            "",
            "",
            "",
        ]
    )
    rows.append(
        [
            "generator (this script, for reference)",
            f"{report.generate_seconds:.2f}",
            _rate(size, report.generate_seconds),
            _mb(size),
            "",
            "",
            "",
        ]
    )
    ratio = f"{size / report.on_disk:.2f}" if report.on_disk else "n/a"
    summary = markdown(
        ("what", "value"),
        [
            ["payload", f"{_mb(size)} MB ({size} bytes), {report.configuration}"],
            [
                "record `_storage_info`",
                f"location {report.record_location}, size {report.record_size}, "
                f"compressed {str(report.record_compressed).lower()}",
            ],
            ["on disk (`output.<token>.txt.zst`)", f"{_mb(report.on_disk)} MB, ratio {ratio}"],
            ["server idle RSS (after a 1 MB warm-up)", f"{_mb(report.baseline_rss)} MB"],
        ],
    )
    transfers_table = markdown(
        (
            "transfer",
            "seconds",
            "MB/s (of payload)",
            "wire MB",
            "peak RSS growth MB",
            "server CPU",
            "sha256",
        ),
        rows,
    )
    range_rows = [
        [
            f"`{check.header}`",
            str(check.status),
            f"`{check.content_range}`",
            str(check.length),
            f"{check.millis:.1f}",
            "yes" if check.exact else "**NO**",
        ]
        for check in report.ranges
    ]
    ranges_table = markdown(
        ("Range", "status", "Content-Range", "bytes", "ms", "exact"), range_rows
    )
    return f"{summary}\n\n{transfers_table}\n\n{ranges_table}"


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
