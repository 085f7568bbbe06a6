"""``make bench-crypto``: what ``ENCRYPTION=on`` adds to each request's work, in-process.

The HTTP suite's sealed scenarios (``make bench``) measure the whole request on a shared
machine; this measures only the work encryption adds, one operation at a time on one core
(the median of ``ROUNDS`` rounds of ``REPEAT`` calls each), beside the same operation
without it: the cached record a hot read opens, the row a write seals and a read opens,
and a 200 KB output's blob (compressed either way). Then what crypto-shredding
(``ENCRYPTION_SHREDDING=on``, ADR 0033) adds to the same seals (the evaluation key from the
LRU, the data key wrapped by it instead of the KEK), and the key table's own calls on a
SQLite file (a key made and committed; a key fetched and unwrapped on an LRU miss).
Writes a section of docs/benchmarks.md.
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import zstandard

from benchmarks.report import replace_section
from benchmarks.servers import ROOT
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.payload import PayloadLocation, StoredPayload
from domain.status import EvaluationStatus
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.crypto.evaluation_keys import EvaluationKeyring, Sealing
from infrastructure.crypto.keyring import Keyring, new_key_line, parse_keyring
from infrastructure.crypto.sealed import (
    HEADER_MAX,
    Cipher,
    open_all,
    open_value,
    parse_header,
    seal_all,
    seal_value,
)
from infrastructure.memory.evaluation_keys import MemoryEvaluationKeys
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.evaluation_keys import SqlEvaluationKeys
from infrastructure.sql.migrate import upgrade
from infrastructure.sql.rows import evaluation_from_row, evaluation_values
from interfaces.settings import DatabaseSettings

DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "make bench-crypto"
HEADING = "## Encryption's own cost (`make bench-crypto`)"
ROUNDS = 7
REPEAT = 2000
LARGE = 200 * 1000
CONTEXT = b"cache|eval:{eval_1}"
EVALUATION = "eval_1"
KEYS_MADE = 300


def _record() -> Evaluation:
    now = datetime.now(UTC)
    return Evaluation(
        id=EvaluationId("eval_20261206_120000_abcdef12"),
        code="print('hello')\n" * 20,
        status=EvaluationStatus.COMPLETED,
        created_at=now,
        updated_at=now,
        metadata={"team": "a", "run": 7},
        output=StoredPayload(PayloadLocation.INLINE, 2000, "line of output\n" * 133),
        error=StoredPayload(PayloadLocation.INLINE, 20, "Traceback: nothing\n"),
    )


def _per_call_us(work: Callable[[], object], repeat: int = REPEAT) -> float:
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(repeat):
            work()
        rounds.append((time.perf_counter() - start) / repeat * 1e6)
    return statistics.median(rounds)


def measure() -> list[tuple[str, float, float]]:
    """(operation, µs without encryption, µs with it)."""
    keyring = parse_keyring(new_key_line())
    seal = ColumnSeal(keyring, seal=True)
    record = _record()
    cached = msgspec.json.encode(record)
    sealed_cached = seal_value(keyring, CONTEXT, cached)
    row = evaluation_values(record)
    sealed_row = evaluation_values(record, seal)
    decode = msgspec.json.Decoder(Evaluation)
    text = os.urandom(LARGE // 2).hex().encode()  # 200 KB of text, as compressible as hex
    compress = zstandard.ZstdCompressor(level=3).compress
    return [
        (
            "hot read: a cached record (2 KB) decoded",
            _per_call_us(lambda: decode.decode(cached)),
            _per_call_us(lambda: decode.decode(open_value(keyring, CONTEXT, sealed_cached))),
        ),
        (
            "cache fill: a record encoded (and sealed)",
            _per_call_us(lambda: msgspec.json.encode(record)),
            _per_call_us(lambda: seal_value(keyring, CONTEXT, msgspec.json.encode(record))),
        ),
        (
            "write: a record's row values (and sealed)",
            _per_call_us(lambda: evaluation_values(record, NO_COLUMN_SEAL)),
            _per_call_us(lambda: evaluation_values(record, seal)),
        ),
        (
            "read: a record from its row (and opened)",
            _per_call_us(lambda: evaluation_from_row(row)),
            _per_call_us(lambda: evaluation_from_row(sealed_row, seal)),
        ),
        (
            "update_large: 200 KB output compressed (and sealed)",
            _per_call_us(lambda: compress(text), 50),
            _per_call_us(lambda: seal_all(Cipher.new(keyring, b"k"), compress(text)), 50),
        ),
    ]


def _paired_us(
    first: Callable[[], object], second: Callable[[], object], repeat: int = REPEAT
) -> tuple[float, float]:
    """Both per call, their rounds alternating, so that a change of the machine's load
    falls on both alike (the two differ by microseconds on a shared machine)."""
    rounds: tuple[list[float], list[float]] = ([], [])
    for _ in range(ROUNDS):
        for work, times in ((first, rounds[0]), (second, rounds[1])):
            start = time.perf_counter()
            for _ in range(repeat):
                work()
            times.append((time.perf_counter() - start) / repeat * 1e6)
    return statistics.median(rounds[0]), statistics.median(rounds[1])


def measure_shredding() -> list[tuple[str, float, float]]:
    """(operation, µs under the KEK, µs under the evaluation key from the LRU)."""
    keyring = parse_keyring(new_key_line())
    kek = Sealing(keyring)
    keys = EvaluationKeyring(MemoryEvaluationKeys(), keyring)
    shred = Sealing(keyring, keys, shred=True)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(keys.key(EVALUATION, create=True))  # then from the LRU
        cached = msgspec.json.encode(_record())
        text = os.urandom(LARGE // 2).hex().encode()
        compress = zstandard.ZstdCompressor(level=3).compress

        def sealed(sealing: Sealing) -> bytes:
            return seal_all(loop.run_until_complete(sealing.new(CONTEXT, EVALUATION)), cached)

        def opened(sealing: Sealing, value: bytes) -> Callable[[], bytes]:
            header = parse_header(value[:HEADER_MAX])
            return lambda: open_all(
                loop.run_until_complete(sealing.of(header, CONTEXT, EVALUATION)), value
            )

        def blob(sealing: Sealing) -> Callable[[], bytes]:
            return lambda: seal_all(
                loop.run_until_complete(sealing.new(b"k", EVALUATION)), compress(text)
            )

        return [
            (
                "hot read: a cached record (2 KB) opened",
                *_paired_us(opened(kek, sealed(kek)), opened(shred, sealed(shred))),
            ),
            (
                "cache fill: a record sealed",
                *_paired_us(lambda: sealed(kek), lambda: sealed(shred)),
            ),
            (
                "update_large: 200 KB output compressed and sealed",
                *_paired_us(blob(kek), blob(shred), 50),
            ),
        ]
    finally:
        loop.close()


async def _key_table_calls(keyring: Keyring, directory: Path) -> list[tuple[str, float]]:
    """(call, µs): the key table on a SQLite file (``synchronous=FULL``, as deployed)."""
    url = f"sqlite+aiosqlite:///{directory / 'keys.db'}"

    engine = create_engine(DatabaseSettings(url=url, pool_size=1))
    table = SqlEvaluationKeys(create_session_maker(engine))

    async def timed(call: Callable[[int], Awaitable[object]], count: int) -> float:
        rounds = []
        for round_number in range(ROUNDS):
            start = time.perf_counter()
            for number in range(count):
                await call(round_number * count + number)
            rounds.append((time.perf_counter() - start) / count * 1e6)
        return statistics.median(rounds)

    try:
        made = await timed(
            lambda n: EvaluationKeyring(table, keyring).key(f"eval_{n}", create=True), KEYS_MADE
        )
        fetched = await timed(
            lambda n: EvaluationKeyring(table, keyring).key(f"eval_{n % KEYS_MADE}"), KEYS_MADE
        )
    finally:
        await engine.dispose()
    return [
        ("a key made: looked up, INSERT committed (a create's first seal)", made),
        ("a key fetched and unwrapped (an LRU miss: a cold read)", fetched),
    ]


def measure_key_table(keyring: Keyring) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as directory:
        upgrade(f"sqlite+aiosqlite:///{Path(directory) / 'keys.db'}")
        return asyncio.run(_key_table_calls(keyring, Path(directory)))


def render(rows: list[tuple[str, float, float]], started: datetime) -> str:
    lines = [
        f"Run {started:%Y-%m-%d %H:%M} UTC with `make bench-crypto`: one process, one core, "
        f"the median of {ROUNDS} rounds; load average {os.getloadavg()[0]:.2f} at start.",
        "",
        "| operation | without (µs) | with ENCRYPTION=on (µs) | added (µs) | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, plain, sealed in rows:
        lines.append(
            f"| {name} | {plain:,.1f} | {sealed:,.1f} | {sealed - plain:,.1f} | "
            f"{sealed / plain:.2f} |"
        )
    return "\n".join(lines)


def render_shredding(rows: list[tuple[str, float, float]], calls: list[tuple[str, float]]) -> str:
    lines = [
        "Crypto-shredding (`ENCRYPTION_SHREDDING=on`, ADR 0033) on the same seals, the "
        "evaluation key from the LRU:",
        "",
        "| operation | ENCRYPTION=on (µs) | and ENCRYPTION_SHREDDING=on (µs) | added (µs) "
        "| ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, kek, shred in rows:
        lines.append(
            f"| {name} | {kek:,.1f} | {shred:,.1f} | {shred - kek:,.1f} | {shred / kek:.2f} |"
        )
    lines += [
        "",
        f"The key table on a SQLite file, {KEYS_MADE} keys, the median of {ROUNDS} rounds:",
        "",
        "| call | µs |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {micros:,.1f} |" for name, micros in calls]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    arguments = parser.parse_args()
    started = datetime.now(UTC)
    text = (
        render(measure(), started)
        + "\n\n"
        + render_shredding(measure_shredding(), measure_key_table(parse_keyring(new_key_line())))
    )
    print(text)
    if not arguments.no_write:
        DOC.write_text(replace_section(DOC.read_text(), SECTION, text, HEADING))
        print(f"written to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
