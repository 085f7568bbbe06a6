"""The file store's inspector: one walk gives the figures and the largest files; a quick
walk is redone on every inspection, a slow one is kept (and says when it was made)."""

from pathlib import Path

import pytest

from infrastructure.files.inspector import LARGEST_FILES, FileBlobInspector

pytestmark = pytest.mark.anyio


def _write(root: Path, key: str, size: int) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


async def test_one_walk_gives_the_figures_and_the_largest_files(tmp_path: Path) -> None:
    for index in range(LARGEST_FILES + 10):
        _write(tmp_path, f"evaluations/e{index:02d}/output.{index:02d}.txt", 100 + index)
    _write(tmp_path, "evaluations/e00/.output.00.txt.tmp", 10_000)  # in progress: not a file
    inspector = FileBlobInspector(tmp_path)

    report = await inspector.inspect(detailed=True)
    largest, total = await inspector.largest()

    assert report.metrics["files"] == total == LARGEST_FILES + 10
    assert report.metrics["evaluations"] == LARGEST_FILES + 10
    assert report.metrics["largest_file"] == "evaluations/e59/output.59.txt"
    assert [entry.size for entry in largest] == list(range(159, 109, -1))
    assert largest[0].key == "evaluations/e59/output.59.txt"


async def test_a_quick_walk_is_current(tmp_path: Path) -> None:
    inspector = FileBlobInspector(tmp_path)
    assert (await inspector.inspect()).metrics["files"] == 0
    _write(tmp_path, "evaluations/e1/output.1.txt", 10)
    assert (await inspector.inspect()).metrics["files"] == 1


async def test_a_slow_walk_is_kept_and_dated(tmp_path: Path) -> None:
    inspector = FileBlobInspector(tmp_path, fresh_s=0.0)  # every walk counts as slow
    await inspector.inspect()
    first = await inspector.inspect()  # the second slow walk in a row: kept from now on
    _write(tmp_path, "evaluations/e1/output.1.txt", 10)
    kept = await inspector.inspect()
    assert kept.metrics["files"] == 0
    assert kept.metrics["measured_at"] == first.metrics["measured_at"]
    assert (await inspector.largest()) == ([], 0)
