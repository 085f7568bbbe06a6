"""What the file store adds to the contract.

Compressed bytes on disk, pruned directories, no way out of its root, one whole
version of concurrent writes, and a real full disk.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import zstandard

from application.errors import BackendUnavailableError
from infrastructure.files.blob_store import FileBlobStore
from tests.contract.blob_data import (
    BOTH_KEYS,
    KEY,
    SHARED_ID,
    ZKEY,
    temp_files,
    text_of,
    two_tenants_outputs,
)
from tests.services import IN_CI

pytestmark = pytest.mark.anyio


async def test_each_tenants_blobs_have_their_own_directory(tmp_path: Path) -> None:
    """The default tenant's under ``evaluations/`` as before tenants, acme's under
    ``tenants/acme/evaluations/`` (ADR 0032)."""
    root = tmp_path / "blobs"
    _, ours, theirs = await two_tenants_outputs(FileBlobStore(root))
    on_disk = sorted(path.relative_to(root).as_posix() for path in root.rglob("*.txt*"))
    assert on_disk == [
        f"evaluations/{SHARED_ID}/{Path(str(ours.key)).name}",
        f"tenants/acme/evaluations/{SHARED_ID}/{Path(str(theirs.key)).name}",
    ]
    assert (root / str(theirs.key)).read_bytes() == b"acme's"


async def test_zst_keys_are_really_zstd_on_disk(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = FileBlobStore(root)
    data = text_of(300_000)
    written = await store.put(ZKEY, data)
    on_disk = (root / ZKEY).read_bytes()
    assert len(on_disk) == written < len(data)
    assert on_disk[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic
    assert zstandard.ZstdDecompressor().decompress(on_disk) == data
    await store.put(KEY, data)
    assert (root / KEY).read_bytes() == data


async def test_delete_prunes_empty_directories_only(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = FileBlobStore(root)
    await store.put("evaluations/a/output.txt", b"a")
    await store.put("evaluations/a/error.txt", b"b")
    await store.put("evaluations/b/output.txt", b"c")
    await store.delete("evaluations/a/output.txt")
    assert (root / "evaluations/a").is_dir()
    await store.delete("evaluations/a/error.txt")
    assert not (root / "evaluations/a").exists()
    assert (root / "evaluations/b/output.txt").read_bytes() == b"c"
    await store.delete("evaluations/b/output.txt")
    assert not (root / "evaluations").exists()
    assert root.is_dir()


async def test_symlink_out_of_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "file-link.txt").symlink_to(outside / "secret.txt")
    store = FileBlobStore(root)
    with pytest.raises(ValueError, match="outside"):
        await store.put("link/new.txt", b"x")
    with pytest.raises(ValueError, match="outside"):
        await store.get("link/secret.txt")
    with pytest.raises(ValueError, match="outside"):
        await store.put("file-link.txt", b"overwrite")
    with pytest.raises(ValueError, match="outside"):
        await store.delete("link/secret.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"secret"


async def test_concurrent_puts_to_one_key_leave_one_whole_version(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = FileBlobStore(root)
    versions = [bytes([65 + i]) * 200_000 for i in range(10)]
    async with anyio.create_task_group() as group:
        for data in versions:
            group.start_soon(store.put, ZKEY, data)
    assert await store.get(ZKEY) in versions
    assert temp_files(root) == []


async def test_failed_put_keeps_previous_content_and_no_temp_file(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = FileBlobStore(root)
    # A file where a directory must go: the write cannot even start.
    await store.put("evaluations/blocked", b"I am a file")
    with pytest.raises(BackendUnavailableError):
        await store.put("evaluations/blocked/output.txt", b"new")
    assert await store.get("evaluations/blocked") == b"I am a file"
    # A directory where the file must go: the temp file is written, then the rename fails.
    await store.put(KEY, b"previous")
    (root / "evaluations/eval_1/dir.txt").mkdir()
    (root / "evaluations/eval_1/dir.txt/keep").write_bytes(b"k")
    with pytest.raises(BackendUnavailableError):
        await store.put("evaluations/eval_1/dir.txt", b"new content")
    assert await store.get(KEY) == b"previous"
    assert temp_files(root) == []


# -- a real full disk ----------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: the only honest way to see ENOSPC."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        reason = f"cannot mount a tmpfs here: {result.stderr.strip()}"
        if IN_CI:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@BOTH_KEYS
async def test_disk_full_is_backend_unavailable_and_leaves_nothing(
    small_disk: Path, key: str
) -> None:
    store = FileBlobStore(small_disk / "blobs")
    await store.put(key, b"small previous content")
    with pytest.raises(BackendUnavailableError) as caught:
        await store.put(key, os.urandom(2 * 1024 * 1024))
    assert caught.value.backend == "file"
    assert "ENOSPC" in caught.value.detail
    assert await store.get(key) == b"small previous content"
    assert temp_files(small_disk) == []
    with pytest.raises(BackendUnavailableError):
        await store.put("evaluations/other/output.txt", os.urandom(2 * 1024 * 1024))
    assert not (small_disk / "blobs/evaluations/other/output.txt").exists()
    assert temp_files(small_disk) == []
