"""``make bench-crypto``: what ``ENCRYPTION=on`` adds to each request's work, in-process.

The HTTP suite's sealed scenarios (``make bench``) measure the whole request on a shared
machine; this measures only the work encryption adds, one operation at a time on one core
(the median of ``ROUNDS`` rounds of ``REPEAT`` calls each), beside the same operation
without it: the cached record a hot read opens, the row a write seals and a read opens,
and a 200 KB output's blob (compressed either way). Writes a section of docs/benchmarks.md.
"""

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import zstandard

from benchmarks.report import replace_section
from benchmarks.servers import ROOT
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.payload import PayloadLocation, StoredPayload
from domain.status import EvaluationStatus
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.crypto.keyring import new_key_line, parse_keyring
from infrastructure.crypto.sealed import Cipher, open_value, seal_all, seal_value
from infrastructure.sql.rows import evaluation_from_row, evaluation_values

DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "make bench-crypto"
HEADING = "## Encryption's own cost (`make bench-crypto`)"
ROUNDS = 7
REPEAT = 2000
LARGE = 200 * 1000
CONTEXT = b"cache|eval:{eval_1}"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    arguments = parser.parse_args()
    started = datetime.now(UTC)
    text = render(measure(), started)
    print(text)
    if not arguments.no_write:
        DOC.write_text(replace_section(DOC.read_text(), SECTION, text, HEADING))
        print(f"written to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
