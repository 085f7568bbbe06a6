"""Compression of program output: zstd against gzip, and app-level zstd against TOAST.

1. Codecs: zstd levels 1 and 3 (``zstandard``) and gzip levels 1 and 6 (stdlib) on
   one deterministic corpus of program output: ratio, compress and decompress MB/s.
2. PostgreSQL: the same outputs at 4 KiB, 32 KiB and 100 KiB (the inline range below
   ``LARGE_FILE_THRESHOLD``) stored as ``text COMPRESSION pglz``, ``text COMPRESSION
   lz4`` and ``bytea`` holding zstd level 3: stored bytes, insert and read-back time
   (app-side compression and decompression included in the bytea timings).

The corpus mixes Python tracebacks, pytest progress lines, numeric tables and JSON
log lines from a seeded generator, so every run measures the same bytes. Each
measurement is repeated (rounds interleave the variants, so a noisy neighbour hurts
all of them alike) and the best is kept. MB is 10^6 bytes.

Run: ``.venv/bin/python -m benchmarks.compression [--corpus-mib 16] [--rows 300]
[--repeat 5] [--skip-postgres]`` (PostgreSQL at BENCH_DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/postgres). The throwaway database it creates is
dropped at the end, whatever happens.
"""

import argparse
import asyncio
import gzip
import json
import os
import platform
import random
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
import zstandard

from benchmarks.program_output import CODE_LINES, FUNCS, MODULES
from benchmarks.support import DEFAULT_URL, throwaway_database
from infrastructure.files.blob_store import COMPRESSION_LEVEL

MB = 1_000_000
KIB = 1024
ROW_SIZES = (4 * KIB, 32 * KIB, 100 * KIB)

# -- deterministic program output --------------------------------------------------------

_WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "user_42", "cfg", "shard-07", "NaN")
_ERRORS = (
    ("ValueError", "invalid literal for int() with base 10: '{w}'"),
    ("KeyError", "'{w}'"),
    ("ZeroDivisionError", "division by zero"),
    ("AssertionError", "expected ({a}, {b}) but got ({b}, {a})"),
    ("TypeError", "unsupported operand type(s) for +: 'int' and 'str'"),
)
_LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR")


class OutputGenerator:
    """Blocks of plausible program output; the same seed gives the same bytes."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible data, not secrets
        self.clock = 1_735_732_800.0  # 2025-01-01T12:00:00Z
        self.tick = 0

    def _stamp(self) -> str:
        self.clock += self.rng.expovariate(20.0)
        seconds = int(self.clock)
        micros = int((self.clock - seconds) * 1e6)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"

    def traceback(self) -> str:
        rng = self.rng
        lines = ["Traceback (most recent call last):"]
        for _ in range(rng.randint(3, 9)):
            module = rng.choice(MODULES)
            lines.append(
                f'  File "/app/src/crucible/{module}.py", line {rng.randint(1, 900)}, '
                f"in {rng.choice(FUNCS)}"
            )
            lines.append(f"    {rng.choice(CODE_LINES)}")
        name, message = rng.choice(_ERRORS)
        word = rng.choice(_WORDS)
        lines.append(
            f"{name}: " + message.format(w=word, a=rng.randint(1, 512), b=rng.randint(1, 512))
        )
        return "\n".join(lines) + "\n"

    def pytest(self) -> str:
        rng = self.rng
        module = rng.choice(MODULES)
        lines = []
        for _ in range(rng.randint(5, 30)):
            self.tick = (self.tick + 1) % 100
            outcome = rng.choices(("PASSED", "FAILED", "SKIPPED"), (40, 2, 1))[0]
            lines.append(
                f"tests/test_{module}.py::test_{rng.choice(FUNCS)}"
                f"[{rng.choice(_WORDS)}-{rng.randint(0, 63)}] {outcome:<8} [{self.tick:3d}%]"
            )
        dots = "".join(rng.choices(".Fs", (60, 1, 2), k=rng.randint(20, 80)))
        lines.append(f"tests/test_{module}_props.py {dots}")
        return "\n".join(lines) + "\n"

    def table(self) -> str:
        rng = self.rng
        lines = [f"{'epoch':>5} {'step':>7} {'loss':>9} {'acc':>7} {'lr':>9} {'sec':>7}"]
        epoch = rng.randint(0, 50)
        loss = rng.uniform(0.5, 3.0)
        for step in range(rng.randint(10, 60)):
            loss = max(0.01, loss * rng.uniform(0.96, 1.02))
            lines.append(
                f"{epoch:5d} {step * 50:7d} {loss:9.5f} {rng.uniform(0.3, 0.99):7.4f} "
                f"{3e-4 * rng.uniform(0.1, 1.0):9.2e} {rng.uniform(0.1, 2.5):7.3f}"
            )
        return "\n".join(lines) + "\n"

    def json_logs(self) -> str:
        rng = self.rng
        lines = []
        for _ in range(rng.randint(5, 40)):
            record = {
                "ts": self._stamp(),
                "level": rng.choice(_LEVELS),
                "logger": f"crucible.{rng.choice(MODULES)}",
                "msg": f"{rng.choice(FUNCS)} finished for {rng.choice(_WORDS)}",
                "request_id": f"{rng.getrandbits(64):016x}",
                "duration_ms": round(rng.lognormvariate(2.0, 1.0), 3),
                "items": rng.randint(0, 5000),
            }
            lines.append(json.dumps(record, separators=(",", ":")))
        return "\n".join(lines) + "\n"

    def output(self, size: int) -> str:
        """``size`` bytes (ASCII, so also characters) of mixed program output."""
        blocks = (self.traceback, self.pytest, self.table, self.json_logs)
        parts: list[str] = []
        length = 0
        while length < size:
            block = self.rng.choices(blocks, (1, 4, 3, 3))[0]()
            parts.append(block)
            length += len(block)
        return "".join(parts)[:size]


# -- 1. codecs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    name: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


def codecs() -> list[Codec]:
    def zstd(level: int) -> Codec:
        compressor = zstandard.ZstdCompressor(level=level)
        decompressor = zstandard.ZstdDecompressor()
        return Codec(f"zstd-{level}", compressor.compress, decompressor.decompress)

    def gzip_codec(level: int) -> Codec:
        def compress(data: bytes) -> bytes:
            return gzip.compress(data, compresslevel=level, mtime=0)

        return Codec(f"gzip-{level}", compress, gzip.decompress)

    return [zstd(1), zstd(3), gzip_codec(1), gzip_codec(6)]


def elapsed(work: Callable[[bytes], bytes], data: bytes) -> float:
    start = time.perf_counter()
    work(data)
    return time.perf_counter() - start


def bench_codecs(data: bytes, repeat: int) -> list[tuple[str, float, float, float]]:
    """(codec, ratio, compress MB/s, decompress MB/s), best of ``repeat`` interleaved rounds."""
    chosen = codecs()
    packed = {codec.name: codec.compress(data) for codec in chosen}
    for codec in chosen:
        if codec.decompress(packed[codec.name]) != data:
            raise AssertionError(f"{codec.name} does not round-trip")
    best_in: dict[str, float] = {}
    best_out: dict[str, float] = {}
    for _ in range(repeat):
        for codec in chosen:
            blob = packed[codec.name]
            spent_in = elapsed(codec.compress, data)
            spent_out = elapsed(codec.decompress, blob)
            best_in[codec.name] = min(best_in.get(codec.name, spent_in), spent_in)
            best_out[codec.name] = min(best_out.get(codec.name, spent_out), spent_out)
    return [
        (
            codec.name,
            len(data) / len(packed[codec.name]),
            len(data) / MB / best_in[codec.name],
            len(data) / MB / best_out[codec.name],
        )
        for codec in chosen
    ]


# -- 2. PostgreSQL -----------------------------------------------------------------------

# name -> column definition; the bytea variant gets zstd-compressed bytes from the app.
VARIANTS = {
    "text pglz": "text COMPRESSION pglz",
    "text lz4": "text COMPRESSION lz4",
    f"bytea zstd-{COMPRESSION_LEVEL}": "bytea",
}


@dataclass
class PgResult:
    variant: str
    size: int
    rows: int
    raw_bytes: int
    column_bytes: int = 0
    relation_bytes: int = 0
    insert_s: float = float("inf")
    read_s: float = float("inf")


def table_name(variant: str, size: int) -> str:
    return "bench_" + variant.replace(" ", "_").replace("-", "") + f"_{size // KIB}k"


def is_app_compressed(variant: str) -> bool:
    return variant.startswith("bytea")


async def insert_rows(
    connection: asyncpg.Connection, table: str, texts: Sequence[str], *, app_compressed: bool
) -> float:
    """Insert every text in one transaction; app compression (if any) is inside the timing."""
    await connection.execute(f"TRUNCATE {table}")
    start = time.perf_counter()
    if app_compressed:
        compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL)
        values: Sequence[str | bytes] = [compressor.compress(text.encode()) for text in texts]
    else:
        values = texts
    async with connection.transaction():
        await connection.executemany(
            f"INSERT INTO {table} (id, body) VALUES ($1, $2)",  # noqa: S608 - our own names
            list(enumerate(values)),
        )
    return time.perf_counter() - start


async def read_rows(
    connection: asyncpg.Connection, table: str, expected: Sequence[str], *, app_compressed: bool
) -> float:
    """Fetch every row as text (decompressing zstd in the app when needed)."""
    start = time.perf_counter()
    rows = await connection.fetch(f"SELECT body FROM {table} ORDER BY id")  # noqa: S608
    if app_compressed:
        decompressor = zstandard.ZstdDecompressor()
        texts = [decompressor.decompress(row["body"]).decode() for row in rows]
    else:
        texts = [row["body"] for row in rows]
    spent = time.perf_counter() - start
    if texts != list(expected):
        raise AssertionError(f"{table} did not read back what was written")
    return spent


async def bench_postgres(
    database_url: str, outputs: dict[int, list[str]], repeat: int
) -> tuple[str, list[PgResult]]:
    async with throwaway_database(database_url, "bench_compression") as dsn:
        return await _bench_in(dsn, outputs, repeat)


async def _bench_in(
    dsn: str, outputs: dict[int, list[str]], repeat: int
) -> tuple[str, list[PgResult]]:
    connection = await asyncpg.connect(dsn)
    try:
        version = str(await connection.fetchval("SHOW server_version"))
        results: list[PgResult] = []
        for size, texts in outputs.items():
            raw = sum(len(text.encode()) for text in texts)
            for variant, column in VARIANTS.items():
                await connection.execute(
                    f"CREATE TABLE {table_name(variant, size)} "
                    f"(id integer PRIMARY KEY, body {column} NOT NULL)"
                )
                results.append(PgResult(variant, size, len(texts), raw))
        for _ in range(repeat):
            for result in results:
                table = table_name(result.variant, result.size)
                texts = outputs[result.size]
                packed = is_app_compressed(result.variant)
                spent = await insert_rows(connection, table, texts, app_compressed=packed)
                result.insert_s = min(result.insert_s, spent)
                spent = await read_rows(connection, table, texts, app_compressed=packed)
                result.read_s = min(result.read_s, spent)
        for result in results:
            table = table_name(result.variant, result.size)
            result.column_bytes = int(
                await connection.fetchval(f"SELECT sum(pg_column_size(body)) FROM {table}")  # noqa: S608
            )
            result.relation_bytes = int(
                await connection.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
            )
        return version, results
    finally:
        await connection.close()


# -- report ------------------------------------------------------------------------------


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus-mib", type=int, default=16)
    parser.add_argument("--rows", type=int, default=300, help="rows per size in PostgreSQL")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20250101)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()

    corpus = OutputGenerator(args.seed).output(args.corpus_mib * 1024 * KIB).encode()
    print(
        f"nproc {os.cpu_count()}, Python {platform.python_version()}, "
        f"zstandard {zstandard.__version__} (libzstd {'.'.join(map(str, zstandard.ZSTD_VERSION))}),"
        f" zlib {zlib.ZLIB_RUNTIME_VERSION}, load average {os.getloadavg()[0]:.2f}\n"
    )
    print(f"## Codecs: {len(corpus) / MB:.1f} MB of program output, best of {args.repeat}\n")
    rows = [
        (name, f"{ratio:.2f}", f"{speed_in:.0f}", f"{speed_out:.0f}")
        for name, ratio, speed_in, speed_out in bench_codecs(corpus, args.repeat)
    ]
    print(markdown(("codec", "ratio", "compress MB/s", "decompress MB/s"), rows))
    if args.skip_postgres:
        return

    generator = OutputGenerator(args.seed + 1)
    outputs = {size: [generator.output(size) for _ in range(args.rows)] for size in ROW_SIZES}
    version, results = asyncio.run(bench_postgres(args.database_url, outputs, args.repeat))
    print(
        f"\n## PostgreSQL {version}: {args.rows} rows per size, best of {args.repeat}\n\n"
        "ratio = raw bytes / sum(pg_column_size); table = pg_total_relation_size "
        "(heap + TOAST + indexes); insert and read are the whole batch, app-side zstd "
        "included.\n"
    )
    table_rows = [
        (
            f"{result.size // KIB} KiB",
            result.variant,
            f"{result.raw_bytes / MB:.2f}",
            f"{result.column_bytes / MB:.2f}",
            f"{result.raw_bytes / result.column_bytes:.2f}",
            f"{result.relation_bytes / MB:.2f}",
            f"{result.insert_s * 1000:.1f}",
            f"{result.read_s * 1000:.1f}",
        )
        for result in results
    ]
    headers = ("size", "column", "raw MB", "stored MB", "ratio", "table MB", "insert ms", "read ms")
    print(markdown(headers, table_rows))


if __name__ == "__main__":
    main()
