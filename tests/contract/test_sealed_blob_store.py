"""What sealing adds to the BlobStore contract: nothing readable on storage, and tampering,
truncation, misplacement and a lost key all refused (ADR 0031)."""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.ports.blob_store import BlobStore
from application.ports.sealed_blobs import Rewrap
from infrastructure.crypto.blob_store import SealedBlobStore
from infrastructure.crypto.keyring import Keyring, parse_keyring
from infrastructure.crypto.sealed import MAGIC, SEALED_SEGMENT, SEGMENT
from infrastructure.files.blob_store import FileBlobStore
from tests.contract.blob_data import BOTH_KEYS, KEY, ZKEY, text_of
from tests.keys import fresh_keyring, key_lines

pytestmark = pytest.mark.anyio

MARKER = b"MARKER-7f3c-plaintext-must-not-reach-the-disk "


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def raw(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """The store under the seal, read directly: what a thief of the disk or bucket gets."""
    if request.param == "s3":
        s3: BlobStore = request.getfixturevalue("s3_raw_store")
        return s3
    return FileBlobStore(tmp_path / "blobs", compress=False)


def sealed(raw: BlobStore, keyring: Keyring, *, seal: bool = True) -> SealedBlobStore:
    return SealedBlobStore(raw, keyring, Backend.FILE, seal=seal)


@BOTH_KEYS
async def test_no_plaintext_reaches_storage(raw: BlobStore, key: str) -> None:
    store = sealed(raw, fresh_keyring())
    data = MARKER * 40_000  # 1.8 MB: many segments
    await store.put(key, data)
    await store.put_stream("evaluations/e/streamed.txt", _chunks(data))

    for stored_key in (key, "evaluations/e/streamed.txt"):
        on_disk = await raw.get(stored_key)
        assert on_disk.startswith(MAGIC)
        assert MARKER[:16] not in on_disk
    assert await store.get(key) == data


@BOTH_KEYS
async def test_a_flipped_byte_is_refused(raw: BlobStore, key: str) -> None:
    store = sealed(raw, fresh_keyring())
    await store.put(key, os.urandom(3 * SEGMENT))  # incompressible: three segments either way
    on_disk = bytearray(await raw.get(key))
    on_disk[-SEALED_SEGMENT - 5] ^= 1  # inside the second-to-last segment
    await raw.put(key, bytes(on_disk))

    with pytest.raises(BackendUnavailableError, match="does not open"):
        await store.get(key)
    with pytest.raises(BackendUnavailableError, match="does not open"):
        _ = [chunk async for chunk in store.stream(key)]


async def test_a_truncated_blob_is_refused(raw: BlobStore) -> None:
    store = sealed(raw, fresh_keyring())
    await store.put(KEY, text_of(3 * SEGMENT + 10))
    on_disk = await raw.get(KEY)
    # Cut exactly at a segment boundary: every remaining segment is whole, none is last.
    await raw.put(KEY, on_disk[: -(10 + 16)])

    with pytest.raises(BackendUnavailableError, match="does not open"):
        await store.get(KEY)
    with pytest.raises(BackendUnavailableError):
        _ = [chunk async for chunk in store.stream(KEY)]


async def test_a_blob_moved_under_another_key_is_refused(raw: BlobStore) -> None:
    store = sealed(raw, fresh_keyring())
    await store.put(KEY, b"evaluation one's output")
    await raw.put("evaluations/other/output.txt", await raw.get(KEY))

    with pytest.raises(BackendUnavailableError, match="does not open"):
        await store.get("evaluations/other/output.txt")


async def test_reordered_segments_are_refused(raw: BlobStore) -> None:
    store = sealed(raw, fresh_keyring())
    await store.put(KEY, text_of(2 * SEGMENT) + b"x" * SEGMENT + b"end")
    on_disk = await raw.get(KEY)
    body_at = len(on_disk) - 3 * SEALED_SEGMENT - (3 + 16)
    first = on_disk[body_at : body_at + SEALED_SEGMENT]
    second = on_disk[body_at + SEALED_SEGMENT : body_at + 2 * SEALED_SEGMENT]
    swapped = on_disk[:body_at] + second + first + on_disk[body_at + 2 * SEALED_SEGMENT :]
    await raw.put(KEY, swapped)

    with pytest.raises(BackendUnavailableError, match="does not open"):
        await store.get(KEY)


async def test_a_keyring_without_the_blobs_key_cannot_read_it(raw: BlobStore) -> None:
    await sealed(raw, fresh_keyring()).put(KEY, b"secret")

    with pytest.raises(BackendUnavailableError, match="no key"):
        await sealed(raw, fresh_keyring()).get(KEY)


@BOTH_KEYS
async def test_blobs_stored_in_clear_before_are_still_read(raw: BlobStore, key: str) -> None:
    data = text_of(200_000)
    # Written by the store as it was before encryption (compressing .zst keys itself).
    before = sealed(raw, fresh_keyring(), seal=False)
    await before.put(key, data)
    assert not (await raw.get(key)).startswith(MAGIC)

    store = sealed(raw, fresh_keyring())
    assert await store.get(key) == data
    assert b"".join([c async for c in store.stream(key, start=70_000)]) == data[70_000:]
    assert await store.stored_size(key) == await raw.stored_size(key)


@BOTH_KEYS
async def test_rewrap_moves_the_data_key_to_the_active_key(raw: BlobStore, key: str) -> None:
    old_line, new_line = key_lines(2)
    data = text_of(150_000)
    await sealed(raw, parse_keyring(old_line)).put(key, data)
    segments_before = (await raw.get(key))[-64:]

    store = sealed(raw, parse_keyring(old_line + new_line))
    assert await store.rewrap(key) is Rewrap.REWRAPPED
    assert await store.rewrap(key) is Rewrap.CURRENT

    assert (await raw.get(key))[-64:] == segments_before  # not re-encrypted
    assert await store.get(key) == data
    # The old key alone no longer opens it: the old key can leave the keys file.
    with pytest.raises(BackendUnavailableError):
        await sealed(raw, parse_keyring(old_line)).get(key)
    assert await sealed(raw, parse_keyring(new_line)).get(key) == data


async def test_rewrap_seals_a_clear_blob(raw: BlobStore) -> None:
    await sealed(raw, fresh_keyring(), seal=False).put(ZKEY, MARKER * 1000)
    assert await sealed(raw, fresh_keyring(), seal=False).rewrap(ZKEY) is Rewrap.CLEAR
    assert not (await raw.get(ZKEY)).startswith(MAGIC)
    store = sealed(raw, fresh_keyring())

    assert await store.rewrap(ZKEY) is Rewrap.SEALED

    assert (await raw.get(ZKEY)).startswith(MAGIC)
    assert await store.get(ZKEY) == MARKER * 1000


async def _chunks(data: bytes, size: int = 10_007) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
