"""The BlobStore contract, held against the memory, the file and the S3 adapter alike."""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import zstandard

from application.backends import Backend
from application.errors import BlobMissingError
from application.ports.blob_store import BlobStore
from domain.tenancy import DEFAULT_TENANT
from infrastructure.crypto.blob_store import SealedBlobStore
from infrastructure.crypto.evaluation_keys import EvaluationKeyring
from infrastructure.files.blob_store import FileBlobStore
from infrastructure.memory.blob_store import MemoryBlobStore
from infrastructure.memory.evaluation_keys import MemoryEvaluationKeys
from tests.contract.blob_data import (
    ACME,
    BOTH_KEYS,
    KEY,
    SHARED_ID,
    SIZES,
    ZKEY,
    chunks_of,
    temp_files,
    text_of,
    two_tenants_outputs,
)
from tests.keys import fresh_keyring

pytestmark = pytest.mark.anyio


BAD_KEYS = ["../x", "/etc/passwd", "a/../../b", "", "a/./b", "a//b", "a\x00b", "..", "a/.."]


@pytest.fixture(
    params=[
        "memory",
        "file",
        pytest.param("s3", marks=pytest.mark.s3),
        "sealed-file",
        pytest.param("sealed-s3", marks=pytest.mark.s3),
        "shredded-file",
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore()
    if request.param == "s3":
        # SeaweedFS, one per session; a fresh key prefix per test (tests/s3_server.py).
        s3: BlobStore = request.getfixturevalue("s3_store")
        return s3
    if request.param == "sealed-file":
        return SealedBlobStore(
            FileBlobStore(tmp_path / "blobs", compress=False), fresh_keyring(), Backend.FILE
        )
    if request.param == "shredded-file":  # under evaluation keys (ADR 0033)
        keyring = fresh_keyring()
        return SealedBlobStore(
            FileBlobStore(tmp_path / "blobs", compress=False),
            keyring,
            Backend.FILE,
            keys=EvaluationKeyring(MemoryEvaluationKeys(), keyring),
            shred=True,
        )
    if request.param == "sealed-s3":
        raw: BlobStore = request.getfixturevalue("s3_raw_store")
        return SealedBlobStore(raw, fresh_keyring(), Backend.S3)
    return FileBlobStore(tmp_path / "blobs")


async def on_storage(store: BlobStore, key: str) -> int:
    """Bytes ``key`` takes on storage: a sealed blob's header and tags included."""
    if isinstance(store, SealedBlobStore):
        return await store.inner.stored_size(key)
    return await store.stored_size(key)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s}B")
@BOTH_KEYS
async def test_round_trip(store: BlobStore, key: str, size: int) -> None:
    data = os.urandom(size // 2) + text_of(size - size // 2)
    written = await store.put(key, data)
    assert await store.get(key) == data
    assert written >= 0
    if not key.endswith(".zst"):
        assert written == size


@BOTH_KEYS
async def test_multibyte_text_round_trips(store: BlobStore, key: str) -> None:
    data = ("héllo wörld ✓ 日本語 🎉\n" * 20_000).encode()
    await store.put(key, data)
    assert (await store.get(key)).decode() == data.decode()


async def test_put_replaces_previous_content(store: BlobStore) -> None:
    await store.put(KEY, b"first version, rather long")
    await store.put(KEY, b"second")
    assert await store.get(KEY) == b"second"


async def test_compressed_size_is_reported(store: BlobStore) -> None:
    data = text_of(200_000)
    written = await store.put(ZKEY, data)
    assert 0 < written < len(data) // 10


@BOTH_KEYS
async def test_stream_yields_exact_bytes_in_bounded_chunks(store: BlobStore, key: str) -> None:
    data = os.urandom(300_000) + text_of(3 * 1024 * 1024)
    await store.put(key, data)
    chunks = [chunk async for chunk in store.stream(key, chunk_size=65_536)]
    assert b"".join(chunks) == data
    assert all(0 < len(chunk) <= 65_536 for chunk in chunks)
    assert len(chunks) >= len(data) // 65_536


async def test_stream_of_empty_blob_yields_nothing(store: BlobStore) -> None:
    await store.put(KEY, b"")
    assert [chunk async for chunk in store.stream(KEY)] == []


async def test_missing_blob(store: BlobStore) -> None:
    with pytest.raises(BlobMissingError):
        await store.get(KEY)
    with pytest.raises(BlobMissingError):
        _ = [chunk async for chunk in store.stream(ZKEY)]


async def test_delete_is_idempotent(store: BlobStore) -> None:
    await store.put(KEY, b"x")
    await store.delete(KEY)
    await store.delete(KEY)
    await store.delete("evaluations/never/written.txt")
    with pytest.raises(BlobMissingError):
        await store.get(KEY)


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_traversal_keys_are_refused(store: BlobStore, key: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key"):
        await store.put(key, b"x")
    with pytest.raises(ValueError, match="key"):
        await store.get(key)
    with pytest.raises(ValueError, match="key"):
        _ = [chunk async for chunk in store.stream(key)]
    with pytest.raises(ValueError, match="key"):
        await store.delete(key)
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "b").exists()


async def test_concurrent_puts_to_different_keys(store: BlobStore) -> None:
    payloads = {
        f"evaluations/e{i}/output.txt{'.zst' * (i % 2)}": text_of(1000 + i) for i in range(40)
    }
    async with anyio.create_task_group() as group:
        for key, data in payloads.items():
            group.start_soon(store.put, key, data)
    for key, data in payloads.items():
        assert await store.get(key) == data


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s}B")
@BOTH_KEYS
async def test_streamed_put_round_trips(store: BlobStore, key: str, size: int) -> None:
    data = text_of(size)
    written = await store.put_stream(key, chunks_of(data))

    assert await store.get(key) == data
    assert written == await store.stored_size(key)
    stored = b"".join([chunk async for chunk in store.stream_stored(key)])
    assert len(stored) == written
    if key.endswith(".zst"):
        assert zstandard.ZstdDecompressor().stream_reader(stored).read() == data
    else:
        assert stored == data


async def test_a_failed_stream_leaves_the_old_blob(store: BlobStore, tmp_path: Path) -> None:
    await store.put(ZKEY, b"old content")

    async def broken() -> AsyncIterator[bytes]:
        yield text_of(300_000)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put_stream(ZKEY, broken())

    assert await store.get(ZKEY) == b"old content"
    assert temp_files(tmp_path) == []


@BOTH_KEYS
async def test_stream_from_an_offset(store: BlobStore, key: str) -> None:
    data = text_of(3 * 65_536 + 123)
    await store.put(key, data)
    for start in (0, 1, 65_535, 65_536, 100_000, len(data) - 1, len(data), len(data) + 5):
        got = b"".join([chunk async for chunk in store.stream(key, start=start)])
        assert got == data[start:], start


async def test_stored_form_of_a_missing_blob(store: BlobStore) -> None:
    with pytest.raises(BlobMissingError):
        await store.stored_size(ZKEY)
    with pytest.raises(BlobMissingError):
        [chunk async for chunk in store.stream_stored(ZKEY)]


async def test_entries_list_stored_blobs_by_prefix(store: BlobStore) -> None:
    await store.put("evaluations/a/output.txt.zst", text_of(50_000))
    await store.put("evaluations/a/metadata.json", b"{}")
    await store.put("evaluations/b/error.txt", b"err")
    await store.put("other/x.txt", b"x")

    entries = [entry async for entry in store.entries("evaluations/")]

    assert [entry.key for entry in entries] == [
        "evaluations/a/metadata.json",
        "evaluations/a/output.txt.zst",
        "evaluations/b/error.txt",
    ]
    assert entries[1].size == await on_storage(store, "evaluations/a/output.txt.zst")
    assert entries[2].size == await on_storage(store, "evaluations/b/error.txt")
    assert await store.stored_size("evaluations/b/error.txt") == 3
    assert all(entry.modified_at.tzinfo is not None for entry in entries)
    assert len([entry async for entry in store.entries()]) == 4


async def test_entries_take_any_prefix_not_only_a_directory(store: BlobStore) -> None:
    for key in ("evaluations/ab/x.txt", "evaluations/ab2/y.txt", "evaluations/b/z.txt", "e.txt"):
        await store.put(key, b"1")

    async def keys(prefix: str) -> list[str]:
        return [entry.key async for entry in store.entries(prefix)]

    assert await keys("evaluations/ab") == ["evaluations/ab/x.txt", "evaluations/ab2/y.txt"]
    assert await keys("evaluations/ab/") == ["evaluations/ab/x.txt"]
    assert await keys("evaluations/ab/x") == ["evaluations/ab/x.txt"]
    assert await keys("e") == [
        "e.txt",
        "evaluations/ab/x.txt",
        "evaluations/ab2/y.txt",
        "evaluations/b/z.txt",
    ]
    assert await keys("evaluations/c") == []
    assert await keys("missing/") == []


async def test_one_id_in_two_tenants_is_two_blobs(store: BlobStore) -> None:
    payloads, ours, theirs = await two_tenants_outputs(store)
    assert ours.key is not None and theirs.key is not None
    assert ours.key.startswith(f"evaluations/{SHARED_ID}/output.")
    assert theirs.key.startswith(f"tenants/acme/evaluations/{SHARED_ID}/output.")
    assert await payloads.read_text(ours) == "the default tenant's"
    assert await payloads.read_text(theirs) == "acme's"
    assert [entry.key for entry in await payloads.blobs_of(DEFAULT_TENANT, SHARED_ID)] == [ours.key]
    assert [entry.key for entry in await payloads.blobs_of(ACME, SHARED_ID)] == [theirs.key]

    for entry in await payloads.blobs_of(ACME, SHARED_ID):  # acme's evaluation purged
        await payloads.discard(entry.key)
    assert await payloads.blobs_of(ACME, SHARED_ID) == []
    assert await payloads.read_text(ours) == "the default tenant's"
    with pytest.raises(BlobMissingError):
        await payloads.read_text(theirs)
