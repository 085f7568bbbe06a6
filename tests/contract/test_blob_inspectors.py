"""The blob stores' inspectors: the file tree measured and listed by level, and the memory store."""

from pathlib import Path

import pytest

from infrastructure.files.blob_store import FileBlobStore
from infrastructure.files.inspector import FileBlobInspector
from infrastructure.memory.blob_store import MemoryBlobInspector, MemoryBlobStore
from tests.contract.blob_data import text_of

pytestmark = pytest.mark.anyio


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
    inspector = FileBlobInspector(root, fresh_s=0)  # every walk counts as slow
    await inspector.inspect()
    walked = await inspector.inspect()  # the second slow walk in a row: kept from now on
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
