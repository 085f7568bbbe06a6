"""The BlobStore contract, held against the memory, the file and the S3 adapter alike."""

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
import zstandard

from application.errors import BackendUnavailableError, BlobMissingError
from application.ports.blob_store import BlobStore
from infrastructure.files.blob_store import FileBlobStore
from infrastructure.files.inspector import FileBlobInspector
from infrastructure.memory.blob_store import MemoryBlobInspector, MemoryBlobStore
from tests.services import IN_CI

pytestmark = pytest.mark.anyio

KEY = "evaluations/eval_1/output.txt"
ZKEY = "evaluations/eval_1/output.txt.zst"
BAD_KEYS = ["../x", "/etc/passwd", "a/../../b", "", "a/./b", "a//b", "a\x00b", "..", "a/.."]


@pytest.fixture(params=["memory", "file", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore()
    if request.param == "s3":
        # SeaweedFS, one per session; a fresh key prefix per test (tests/s3_server.py).
        s3: BlobStore = request.getfixturevalue("s3_store")
        return s3
    return FileBlobStore(tmp_path / "blobs")


def temp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.name.endswith(".tmp")]


def text_of(size: int) -> bytes:
    """Repetitive but non-trivial text of exactly ``size`` bytes."""
    line = b"2024-01-01T00:00:00Z INFO step completed; value=42 status=ok\n"
    return (line * (size // len(line) + 1))[:size]


SIZES = [0, 1, 100 * 1024 + 1, 5 * 1024 * 1024]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s}B")
@pytest.mark.parametrize("key", [KEY, ZKEY], ids=["plain", "zst"])
async def test_round_trip(store: BlobStore, key: str, size: int) -> None:
    data = os.urandom(size // 2) + text_of(size - size // 2)
    written = await store.put(key, data)
    assert await store.get(key) == data
    assert written >= 0
    if not key.endswith(".zst"):
        assert written == size


@pytest.mark.parametrize("key", [KEY, ZKEY], ids=["plain", "zst"])
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


@pytest.mark.parametrize("key", [KEY, ZKEY], ids=["plain", "zst"])
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


async def test_concurrent_puts_to_different_keys(store: BlobStore) -> None:
    payloads = {
        f"evaluations/e{i}/output.txt{'.zst' * (i % 2)}": text_of(1000 + i) for i in range(40)
    }
    async with anyio.create_task_group() as group:
        for key, data in payloads.items():
            group.start_soon(store.put, key, data)
    for key, data in payloads.items():
        assert await store.get(key) == data


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


@pytest.mark.parametrize("key", [KEY, ZKEY], ids=["plain", "zst"])
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


# -- inspectors ----------------------------------------------------------------------------


async def test_file_inspector_measures_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = FileBlobStore(root)
    await store.put("evaluations/a/output.txt.zst", text_of(50_000))
    await store.put("evaluations/a/metadata.json", b"{}")
    await store.put("evaluations/b/error.txt", b"boom")
    report = await FileBlobInspector(root).inspect(detailed=True)
    assert report.name == "file"
    assert report.type == "filesystem"
    assert report.status == "healthy"
    on_disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    largest = (root / "evaluations/a/output.txt.zst").stat().st_size
    metrics = dict(report.metrics)
    assert isinstance(metrics.pop("measured_at"), str)  # when the walk ran
    assert isinstance(metrics.pop("measure_ms"), float)  # and how long it took
    assert metrics == {
        "files": 3,
        "total_size_bytes": on_disk,
        "evaluations": 2,
        "directories": 3,  # evaluations/, evaluations/a/, evaluations/b/
        "largest_file": "evaluations/a/output.txt.zst",
        "largest_file_bytes": largest,
    }
    assert report.details["output_compressed"] == 1
    assert report.details["error_uncompressed"] == 1
    assert report.details["metadata"] == 1
    free: object = report.details["free_bytes"]  # object: mypy sees no int in a float MetricValue
    assert isinstance(free, int)
    assert free > 0
    assert report.details["root"] == str(root.resolve())


async def test_file_inspector_lists_one_level_with_totals_from_its_walk(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = FileBlobStore(root)
    await store.put("evaluations/a/output.txt", b"x" * 10)
    await store.put("evaluations/a/metadata.json", b"{}")
    await store.put("evaluations/b/c/error.txt", b"y" * 5)
    await store.put("evaluations/top.txt", b"t")
    inspector = FileBlobInspector(root)

    top = await inspector.directory("", after="", limit=10)
    assert [(d.name, d.path, d.files, d.size) for d in top.directories] == [
        ("evaluations", "evaluations/", 4, 18)
    ]
    assert (top.files, top.more) == ([], False)
    assert top.totals_measured_at is None  # a quick walk is redone for every call

    level = await inspector.directory("evaluations/", after="", limit=10)
    assert [(d.name, d.files, d.size) for d in level.directories] == [("a", 2, 12), ("b", 1, 5)]
    assert [(f.name, f.entry.key, f.entry.size) for f in level.files] == [
        ("top.txt", "evaluations/top.txt", 1)
    ]
    listed = {entry.key: entry async for entry in store.entries("evaluations/")}
    assert level.files[0].entry == listed["evaluations/top.txt"]

    first = await inspector.directory("evaluations/", after="", limit=2)
    assert ([d.name for d in first.directories], first.files, first.more) == (["a", "b"], [], True)
    rest = await inspector.directory("evaluations/", after="b/", limit=2)
    assert ([d.name for d in rest.directories], [f.name for f in rest.files]) == ([], ["top.txt"])
    assert not rest.more
    assert (await inspector.directory("missing/", after="", limit=10)).directories == []


async def test_file_inspector_lists_with_kept_totals_once_its_walk_is_slow(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = FileBlobStore(root)
    await store.put("evaluations/a/output.txt", b"x" * 10)
    inspector = FileBlobInspector(root, fresh_s=0)  # every walk counts as slow: kept
    walked = await inspector.inspect()
    await store.put("evaluations/a/metadata.json", b"{}")  # after the kept walk
    await store.put("evaluations/new/error.txt", b"e")

    level = await inspector.directory("evaluations/", after="", limit=10)

    assert [(d.name, d.files, d.size) for d in level.directories] == [
        ("a", 1, 10),  # as the walk saw it
        ("new", 1, 1),  # unknown to the walk: counted for the page
    ]
    assert level.totals_measured_at is not None
    assert level.totals_measured_at.isoformat() == walked.metrics["measured_at"]


async def test_file_inspector_reports_unwritable_root(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    report = await FileBlobInspector(blocker).inspect()
    assert report.status == "unavailable"
    assert report.error is not None
    assert "not writable" in report.error


async def test_memory_inspector() -> None:
    store = MemoryBlobStore()
    written = await store.put("evaluations/a/output.txt.zst", text_of(50_000))
    await store.put("evaluations/b/error.txt", b"boom")
    report = await MemoryBlobInspector(store).inspect(detailed=True)
    assert report.status == "healthy"
    assert report.metrics == {
        "files": 2,
        "total_size_bytes": written + 4,
        "evaluations": 2,
        "directories": 3,
        "largest_file": "evaluations/a/output.txt.zst",
        "largest_file_bytes": written,
    }


async def chunks_of(data: bytes, size: int = 7_777) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s}B")
@pytest.mark.parametrize("key", [KEY, ZKEY], ids=["plain", "zst"])
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


@pytest.mark.parametrize("key", [KEY, ZKEY], ids=["plain", "zst"])
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
    assert entries[1].size == await store.stored_size("evaluations/a/output.txt.zst")
    assert entries[2].size == 3
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
