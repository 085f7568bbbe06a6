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
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread

from application.ports.backend_inspector import BackendInspector
from application.ports.blob_store import BlobEntry
from application.ports.health_probe import HealthProbe
from application.ports.largest_blobs import LargestBlobs
from application.queries import BackendReport, MetricValue
from infrastructure.files.durable import TEMP_SUFFIX, is_temp
from infrastructure.files.errors import BACKEND, reason
from infrastructure.measurement import FRESH_S, KeptMeasurement, Measured

# Below this much free space on the file store's file system, health says unavailable.
MIN_FREE_BYTES = 64 * 1024 * 1024
# How many of the largest files a walk keeps (the details page lists them).
LARGEST_FILES = 50


class FileBlobInspector(BackendInspector, HealthProbe, LargestBlobs):
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
        """The ``LARGEST_FILES`` largest files, largest first, and how many files there are."""
        walk = (await self._walks.get()).value
        return walk.largest_entries(), walk.files

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


class _Walk:
    """One pass over the tree, symlinks not followed."""

    def __init__(self, root: Path) -> None:
        self.files = 0
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
        evaluations_dir = root / "evaluations"
        with suppress(OSError):
            self.evaluations = sum(1 for entry in os.scandir(evaluations_dir) if entry.is_dir())
        for directory, dirs, names in os.walk(root):
            self.directories += len(dirs)
            for name in names:
                self._count(Path(directory) / name, name)

    def largest_entries(self) -> list[BlobEntry]:
        return [entry for _, _, entry in sorted(self._largest, reverse=True)]

    def _count(self, path: Path, name: str) -> None:
        if is_temp(name):
            self.temp_files += 1
            return
        try:
            info = path.lstat()
        except OSError:
            return
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

    @staticmethod
    def _kind(name: str) -> str:
        for kind in ("output", "error"):
            if name.startswith(f"{kind}.") and name.endswith(".txt.zst"):
                return f"{kind}_compressed"
            if name.startswith(f"{kind}.") and name.endswith(".txt"):
                return f"{kind}_uncompressed"
        return "metadata" if name == "metadata.json" else "other"
