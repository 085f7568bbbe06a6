"""Deterministic program output for the payload benchmark, addressable by block.

Plausible output of an evaluation (pytest lines, log lines, tqdm progress bars with
block characters, tracebacks, JSON log lines, a few emoji) from a seeded generator, so
any byte range can be regenerated to check what the service returns.
"""

import random
import time
from collections.abc import Iterator, Sequence

MIB = 1024 * 1024
BLOCK_SIZE = MIB
DEFAULT_SEED = 20250101

# Names and source lines of the programs that "ran" (also used by compression.py).
MODULES = ("data", "model", "train", "metrics", "io_utils", "scheduler", "tokenizer")
FUNCS = ("load_batch", "forward", "step", "evaluate", "parse_row", "collate", "run_epoch")
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
CODE_LINES = (
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
    return f"{stamp} {level:<7} crucible.{_pick(MODULES, bits >> 44)}: {message}\n"


_OUTCOMES = ("PASSED",) * 28 + ("FAILED", "SKIPPED", "SKIPPED", "XFAIL")


def _pytest_line(bits: int) -> str:
    return (
        f"tests/test_{_pick(MODULES, bits)}.py::test_{_pick(FUNCS, bits >> 3)}"
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
        f'"logger":"crucible.{_pick(MODULES, bits >> 3)}","msg":"{_pick(FUNCS, bits >> 6)} done",'
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
            f'  File "/app/src/crucible/{rng.choice(MODULES)}.py", line {rng.randint(1, 900)}, '
            f"in {rng.choice(FUNCS)}"
        )
        lines.append(f"    {rng.choice(CODE_LINES)}")
    lines.append(
        rng.choice(_ERRORS).format(
            w=rng.choice(_WORDS), n=rng.randint(1, 512), f=rng.uniform(0.1, 8)
        )
    )
    return "\n".join(lines) + "\n"
