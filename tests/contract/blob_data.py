"""Keys, sizes and contents the blob store tests share."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

KEY = "evaluations/eval_1/output.txt"
ZKEY = "evaluations/eval_1/output.txt.zst"
# A test of every store, once with a plain key and once with a compressed one.
BOTH_KEYS = pytest.mark.parametrize("key", [KEY, ZKEY], ids=["plain", "zst"])
SIZES = [0, 1, 100 * 1024 + 1, 5 * 1024 * 1024]


def temp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.name.endswith(".tmp")]


def text_of(size: int) -> bytes:
    """Repetitive but non-trivial text of exactly ``size`` bytes."""
    line = b"2024-01-01T00:00:00Z INFO step completed; value=42 status=ok\n"
    return (line * (size // len(line) + 1))[:size]


async def chunks_of(data: bytes, size: int = 7_777) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
