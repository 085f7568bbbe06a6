"""Measures the blob directory for health, overview and details pages.

Counting a directory tree takes one ``lstat`` per file: most of a second for the
17,000 evaluation directories a million records leave. The walk is a
``KeptMeasurement``: redone on every inspection while it is quick, else kept and
redone in the background; ``measured_at`` and ``measure_ms`` say which walk the
figures come from.
"""

import heapq
import os
import shutil
import tempfile
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread
import msgspec

from application.ports.backend_inspector import BackendInspector
from application.ports.blob_directories import (
    BlobDirectories,
    BlobDirectory,
    BlobDirectoryPage,
    BlobFile,
)
from application.ports.blob_store import BlobEntry
from application.ports.health_probe import HealthProbe
from application.ports.largest_blobs import LargestBlobs
from application.queries import BackendReport, MetricValue
from domain.blob_paths import EVALUATIONS, TENANTS
from infrastructure.files.durable import TEMP_SUFFIX, is_temp
from infrastructure.files.errors import BACKEND, reason
from infrastructure.measurement import FRESH_S, KeptMeasurement, Measured

# Below this much free space on the file store's file system, health says unavailable.
MIN_FREE_BYTES = 64 * 1024 * 1024
# How many of the largest files a walk keeps (the details page lists them).
LARGEST_FILES = 50


class FileBlobInspector(BackendInspector, HealthProbe, LargestBlobs, BlobDirectories):
    """Measures the blob directory: counts, sizes, free space and whether it is writable."""

    name: str = BACKEND

    def __init__(self, root: Path, *, fresh_s: float = FRESH_S) -> None:
        self._root = Path(root)
        self._walks = KeptMeasurement(
            lambda: anyio.to_thread.run_sync(_Walk, self._root), fresh_s=fresh_s
        )

    async def inspect(self, *, detailed: bool = False) -> BackendReport:
        walk = await self._walks.get()
        return await anyio.to_thread.run_sync(lambda: self._inspect(walk, detailed=detailed))

    async def probe(self) -> BackendReport:
        """The root exists and is a directory, and its file system has free space."""
        return await anyio.to_thread.run_sync(self._probe)

    async def largest(self) -> tuple[list[BlobEntry], int]:
        """The ``LARGEST_FILES`` largest files, largest first, and how many files there are,
        from the walk the last ``inspect`` reported (not a second walk)."""
        walk = (await self._walks.latest()).value
        return walk.largest_entries(), walk.files

    async def directory(self, prefix: str, *, after: str, limit: int) -> BlobDirectoryPage:
        """One level read with ``scandir``; the directories' totals from the kept walk
        (counted now for a directory the walk has not seen)."""
        started = time.monotonic()
        walk = await self._walks.get()
        page = await anyio.to_thread.run_sync(
            lambda: _directory(self._root, prefix, walk.value.totals, after, limit)
        )
        kept = walk.finished < started  # not measured for this call: figures may be old
        return msgspec.structs.replace(page, totals_measured_at=walk.measured_at if kept else None)

    def _probe(self) -> BackendReport:
        error: str | None = None
        free: int | None = None
        try:
            if not self._root.is_dir():
                self._root.mkdir(parents=True, exist_ok=True)
            usage = os.statvfs(self._root)
            free = usage.f_bavail * usage.f_frsize
        except OSError as exc:
            error = f"storage path {self._root} is not usable: {reason(exc)}"
        else:
            if free < MIN_FREE_BYTES:
                error = f"storage path {self._root} has {free} bytes free"
        return BackendReport(
            name=self.name,
            type="filesystem",
            status="unavailable" if error else "healthy",
            metrics={"free_bytes": free},
            error=error,
        )

    def _inspect(self, walk: "Measured[_Walk]", *, detailed: bool) -> BackendReport:
        error = self._probe_writable()
        counts = walk.value
        metrics: dict[str, MetricValue] = {
            "files": counts.files,
            "total_size_bytes": counts.total_size,
            "evaluations": counts.evaluations,
            "directories": counts.directories,
            "largest_file": counts.largest_file,
            "largest_file_bytes": counts.largest_size if counts.largest_file else None,
            "measured_at": walk.measured_at.isoformat(),
            "measure_ms": round(walk.duration_s * 1000, 1),
        }
        details: dict[str, MetricValue] = {}
        if detailed:
            details["root"] = str(self._root.resolve())
            details["free_bytes"] = _free_bytes(self._root)
            details.update(counts.by_kind)
            details["temp_files"] = counts.temp_files
        return BackendReport(
            name=self.name,
            type="filesystem",
            status="unavailable" if error else "healthy",
            metrics=metrics,
            details=details,
            error=error,
        )

    def _probe_writable(self) -> str | None:
        """Write and remove a probe file: permission bits cannot tell for root or a RO mount."""
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self._root, prefix=".probe.", suffix=TEMP_SUFFIX):
                pass
        except OSError as exc:
            return f"storage path {self._root} is not writable: {reason(exc)}"
        return None


def _free_bytes(root: Path) -> int | None:
    try:
        return shutil.disk_usage(root).free
    except OSError:
        return None


def _directory(
    root: Path, prefix: str, totals: dict[str, list[int]], after: str, limit: int
) -> BlobDirectoryPage:
    directories: list[str] = []
    files: dict[str, os.DirEntry[str]] = {}
    parts = prefix.split("/")[:-1]
    with suppress(OSError):
        base = root.joinpath(*parts)
        if base.resolve() != root.resolve().joinpath(*parts):
            raise OSError("a symlink on the way")  # the walk does not follow it either
        with os.scandir(base) as found:
            for entry in found:
                if is_temp(entry.name):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    directories.append(entry.name)
                elif entry.is_file(follow_symlinks=False):
                    files[entry.name] = entry
    start = (0 if after.endswith("/") else 1, after.removesuffix("/")) if after else (-1, "")
    ranked = sorted([(0, name) for name in directories] + [(1, name) for name in files])
    page = [rank for rank in ranked if rank > start]
    chosen = page[:limit]
    shown_files: list[BlobFile] = []
    for kind, name in chosen:
        if kind == 1:
            with suppress(OSError):
                info = files[name].stat(follow_symlinks=False)
                modified = datetime.fromtimestamp(info.st_mtime, UTC)
                blob = BlobEntry(f"{prefix}{name}", info.st_size, modified)
                shown_files.append(BlobFile(name=name, entry=blob))
    shown_directories: list[BlobDirectory] = []
    for kind, name in chosen:
        if kind == 0:
            path = f"{prefix}{name}/"
            count, size = totals.get(path) or _Walk(root / path, prefix=path).totals.get(
                path, [0, 0]
            )
            shown_directories.append(BlobDirectory(name=name, path=path, files=count, size=size))
    return BlobDirectoryPage(
        directories=shown_directories, files=shown_files, more=len(page) > limit
    )


class _Walk:
    """One pass over the tree, symlinks not followed.

    ``totals`` holds, for every directory under the root ('a/', 'a/b/'), the files and
    bytes under it at any depth, so a listing of one level needs no walk of its own.
    """

    def __init__(self, root: Path, *, prefix: str = "") -> None:
        self.files = 0
        self.totals: dict[str, list[int]] = {}
        self._prefix = prefix  # the key of ``root`` (a walk of one directory)
        self.total_size = 0
        self.temp_files = 0
        self.evaluations = 0
        self.directories = 0
        # Its path under the root; the first found among equals.
        self.largest_file: str | None = None
        self.largest_size = -1
        # A min-heap of (size, -order, entry): the largest files, the first found among equals.
        self._largest: list[tuple[int, int, BlobEntry]] = []
        self._root = root
        self.by_kind: dict[str, int] = {
            f"{kind}_{form}": 0
            for kind in ("output", "error")
            for form in ("compressed", "uncompressed")
        }
        self.by_kind["metadata"] = 0
        self.by_kind["other"] = 0
        self.evaluations = _count_evaluations(root)
        for directory, dirs, names in os.walk(root):
            self.directories += len(dirs)
            relative = Path(directory).relative_to(root).parts
            keys = [
                self._prefix + "".join(f"{part}/" for part in relative[:depth])
                for depth in range(0 if prefix else 1, len(relative) + 1)
            ]
            under = [self.totals.setdefault(key, [0, 0]) for key in keys]
            for name in names:
                size = self._count(Path(directory) / name, name)
                if size is not None:
                    for totals in under:
                        totals[0] += 1
                        totals[1] += size

    def largest_entries(self) -> list[BlobEntry]:
        return [entry for _, _, entry in sorted(self._largest, reverse=True)]

    def _count(self, path: Path, name: str) -> int | None:
        """Counts one file; its size, or None when it is not counted."""
        if is_temp(name):
            self.temp_files += 1
            return None
        try:
            info = path.lstat()
        except OSError:
            return None
        size = info.st_size
        self.files += 1
        self.total_size += size
        self.by_kind[self._kind(name)] += 1
        if size > self.largest_size:
            self.largest_size = size
            self.largest_file = path.relative_to(self._root).as_posix()
        rank = (size, -self.files)  # the first found among equals ranks higher
        if len(self._largest) < LARGEST_FILES or rank > self._largest[0][:2]:
            modified = datetime.fromtimestamp(info.st_mtime, UTC)
            entry = BlobEntry(path.relative_to(self._root).as_posix(), size, modified)
            if len(self._largest) < LARGEST_FILES:
                heapq.heappush(self._largest, (*rank, entry))
            else:
                heapq.heapreplace(self._largest, (*rank, entry))
        return size

    @staticmethod
    def _kind(name: str) -> str:
        for kind in ("output", "error"):
            if name.startswith(f"{kind}.") and name.endswith(".txt.zst"):
                return f"{kind}_compressed"
            if name.startswith(f"{kind}.") and name.endswith(".txt"):
                return f"{kind}_uncompressed"
        return "metadata" if name == "metadata.json" else "other"


def _count_evaluations(root: Path) -> int:
    """Every tenant's evaluation directories: ``evaluations/*``, ``tenants/*/evaluations/*``."""
    count = 0
    for directory in (root / EVALUATIONS, *(root / TENANTS).glob(f"*/{EVALUATIONS}")):
        with suppress(OSError):
            count += sum(1 for entry in os.scandir(directory) if entry.is_dir())
    return count
