"""Keys, sizes and contents the blob store tests share."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from application.ports.blob_store import BlobStore
from application.services.payloads import PayloadStore
from domain.identifiers import EvaluationId
from domain.payload import StorageThresholds, StoredPayload
from domain.tenancy import DEFAULT_TENANT, TenantId

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


ACME = TenantId("acme")
SHARED_ID = EvaluationId("shared-1")
# Every payload over 4 bytes is a blob; over 8, a compressed one.
SMALL = StorageThresholds(large_file_threshold=4, compression_threshold=8, preview_size=2)


async def two_tenants_outputs(
    store: BlobStore,
) -> tuple[PayloadStore, StoredPayload, StoredPayload]:
    """``SHARED_ID``'s output stored for the default tenant and for ``ACME`` (the payloads,
    the default tenant's, acme's)."""
    payloads = PayloadStore(store, SMALL)
    ours = await payloads.store(DEFAULT_TENANT, SHARED_ID, "output", "the default tenant's")
    theirs = await payloads.store(ACME, SHARED_ID, "output", "acme's")
    return payloads, ours, theirs
