"""Blobs as files under ``FILE_STORAGE_PATH``.

Writes are atomic and durable: a temp file in the target directory, fsync,
``os.replace``, then fsync of the directory, so after a crash a reader finds
the old content or the new, never a torn file. Keys ending in ``.zst`` are
zstd-compressed on the way in and out, a chunk at a time. All blocking I/O runs
in worker threads so the event loop never waits on the disk.
"""

import errno
import functools
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol, TypeVar

import anyio.to_thread
import zstandard

from application.errors import BackendUnavailableError, BlobMissingError
from application.ports.blob_store import BlobEntry
from application.queries import BackendReport, MetricValue
from infrastructure.files.keys import is_compressed_key, resolve_inside
from infrastructure.metrics import blob_bytes, timed

logger = logging.getLogger(__name__)

BACKEND = "file"
COMPRESSION_LEVEL = 3
WRITE_CHUNK = 1024 * 1024
TEMP_SUFFIX = ".tmp"
_MAKE_DIR_ATTEMPTS = 3

T = TypeVar("T")


def _reason(exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno or 0, "OSError")
    return f"{code}: {exc.strerror or exc}"


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(directory: Path, root: Path) -> None:
    """Create ``directory`` (inside ``root``) and fsync each parent that gained an entry."""
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
    missing: list[Path] = []
    current = directory
    while current != root and not current.is_dir():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with suppress(FileExistsError):
            path.mkdir()
        fsync_dir(path.parent)


class _Compressor(Protocol):
    """zstandard's compressobj (its class is not exported by every backend)."""

    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


class _ChunkReader:
    """Reads a blob's original bytes a chunk at a time (decompressing ``.zst`` on the fly)."""

    def __init__(self, path: Path, *, compressed: bool, chunk_size: int) -> None:
        self._file: IO[bytes] = path.open("rb")
        self._reader: IO[bytes] | zstandard.ZstdDecompressionReader = (
            zstandard.ZstdDecompressor().stream_reader(
                self._file, read_size=chunk_size, closefd=False
            )
            if compressed
            else self._file
        )

    def read(self, size: int) -> bytes:
        data: bytes = self._reader.read(size)
        return data

    def skip(self, count: int) -> None:
        """Move ``count`` original bytes forward (decompressing what it passes over)."""
        if self._reader is self._file:
            self._file.seek(count, os.SEEK_CUR)
            return
        while count > 0:
            passed = len(self.read(min(count, WRITE_CHUNK)))
            if not passed:
                return
            count -= passed

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            self._file.close()


class FileBlobStore:
    """``BlobStore`` on a local (or mounted) directory; keys never leave ``root``."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def root(self) -> Path:
        return self._root

    async def put(self, key: str, data: bytes) -> int:
        written = await self._in_thread(lambda: self._put(key, data))
        blob_bytes("written", written)
        return written

    async def get(self, key: str) -> bytes:
        data = await self._in_thread(lambda: self._get(key))
        blob_bytes("read", len(data))
        return data

    async def stream(
        self, key: str, chunk_size: int = 65_536, start: int = 0
    ) -> AsyncIterator[bytes]:
        if chunk_size <= 0 or start < 0:
            raise ValueError("chunk_size must be positive and start not negative")
        reader = await self._in_thread(lambda: self._open(key, chunk_size))
        try:
            if start:
                await self._in_thread(lambda: self._skip(key, reader, start))
            while True:
                chunk = await self._in_thread(lambda: self._read(key, reader, chunk_size))
                if not chunk:
                    return
                yield chunk
        finally:
            reader.close()

    async def stream_stored(self, key: str, chunk_size: int = 65_536) -> AsyncIterator[bytes]:
        path = resolve_inside(self._root, key)
        handle = await self._in_thread(lambda: self._open_stored(key, path))
        try:
            while chunk := await self._in_thread(lambda: handle.read(chunk_size)):
                blob_bytes("read", len(chunk))
                yield chunk
        finally:
            handle.close()

    async def entries(self, prefix: str = "") -> AsyncIterator[BlobEntry]:
        root = self._root
        found = await self._in_thread(lambda: _list_files(root, prefix))
        for entry in found:
            yield entry

    async def stored_size(self, key: str) -> int:
        path = resolve_inside(self._root, key)
        handle = await self._in_thread(lambda: self._open_stored(key, path))
        try:
            return os.fstat(handle.fileno()).st_size
        finally:
            handle.close()

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        path = resolve_inside(self._root, key)
        root = self._root.resolve()
        compress = is_compressed_key(key)
        try:
            fd, temp_name = await self._in_thread(lambda: self._temp_file(path, root))
        except OSError as exc:
            raise BackendUnavailableError(BACKEND, _reason(exc)) from exc
        temp = Path(temp_name)
        handle = os.fdopen(fd, "wb")
        compressor = (
            zstandard.ZstdCompressor(level=COMPRESSION_LEVEL).compressobj() if compress else None
        )
        try:
            async for chunk in chunks:
                # Compression runs in the worker thread too, off the event loop.
                await self._in_thread(functools.partial(_write_all, handle, chunk, compressor))
            written = await self._in_thread(
                lambda: self._finish_stream(handle, compressor, temp, path)
            )
            blob_bytes("written", written)
            return written
        except BaseException:
            # The stream failed (client gone, bad text, full disk): the old blob stays.
            with anyio.CancelScope(shield=True):
                await self._in_thread(lambda: _discard_temp(handle, temp))
            raise

    async def delete(self, key: str) -> None:
        await self._in_thread(lambda: self._delete(key))

    @staticmethod
    async def _in_thread(work: Callable[[], T]) -> T:
        with timed(BACKEND, "io"):
            return await anyio.to_thread.run_sync(work)

    # -- blocking parts, run in worker threads ---------------------------------------------

    def _put(self, key: str, data: bytes) -> int:
        path = resolve_inside(self._root, key)
        root = self._root.resolve()
        try:
            fd, temp_name = self._temp_file(path, root)
            temp = Path(temp_name)
            try:
                with os.fdopen(fd, "wb") as handle:
                    os.fchmod(handle.fileno(), 0o644)
                    _write(handle, data, compress=is_compressed_key(key))
                    handle.flush()
                    os.fsync(handle.fileno())
                    written = handle.tell()
                os.replace(temp, path)
            except BaseException:
                with suppress(OSError):
                    temp.unlink()
                raise
            fsync_dir(path.parent)
        except OSError as exc:
            logger.warning("file store: cannot write %s: %s", key, _reason(exc))
            raise BackendUnavailableError(BACKEND, _reason(exc)) from exc
        return written

    @staticmethod
    def _temp_file(path: Path, root: Path) -> tuple[int, str]:
        """A temp file beside ``path``; retried if a concurrent delete pruned the directory."""
        for attempt in range(_MAKE_DIR_ATTEMPTS):
            _make_dirs(path.parent, root)
            try:
                return tempfile.mkstemp(
                    dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX
                )
            except FileNotFoundError:
                if attempt == _MAKE_DIR_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _finish_stream(
        handle: IO[bytes],
        compressor: _Compressor | None,
        temp: Path,
        path: Path,
    ) -> int:
        """Close the frame, make the file durable and move it into place (in a thread)."""
        try:
            if compressor is not None:
                handle.write(compressor.flush())
            os.fchmod(handle.fileno(), 0o644)
            handle.flush()
            os.fsync(handle.fileno())
            written = handle.tell()
            handle.close()
            os.replace(temp, path)
            fsync_dir(path.parent)
        except OSError as exc:
            _discard_temp(handle, temp)
            logger.warning("file store: cannot write %s: %s", path.name, _reason(exc))
            raise BackendUnavailableError(BACKEND, _reason(exc)) from exc
        return written

    def _open_stored(self, key: str, path: Path) -> IO[bytes]:
        try:
            return path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BlobMissingError(key) from None
        except OSError as exc:
            raise BackendUnavailableError(BACKEND, _reason(exc)) from exc

    @classmethod
    def _skip(cls, key: str, reader: _ChunkReader, count: int) -> None:
        try:
            reader.skip(count)
        except zstandard.ZstdError as exc:
            raise BackendUnavailableError(BACKEND, f"blob '{key}' is corrupt: {exc}") from exc
        except OSError as exc:
            raise BackendUnavailableError(BACKEND, _reason(exc)) from exc

    def _get(self, key: str) -> bytes:
        reader = self._open(key, WRITE_CHUNK)
        try:
            parts: list[bytes] = []
            while chunk := self._read(key, reader, WRITE_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        finally:
            reader.close()

    def _open(self, key: str, chunk_size: int) -> _ChunkReader:
        path = resolve_inside(self._root, key)
        try:
            return _ChunkReader(path, compressed=is_compressed_key(key), chunk_size=chunk_size)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BlobMissingError(key) from None
        except OSError as exc:
            raise BackendUnavailableError(BACKEND, _reason(exc)) from exc

    @staticmethod
    def _read(key: str, reader: _ChunkReader, size: int) -> bytes:
        try:
            chunk = reader.read(size)
            blob_bytes("read", len(chunk))
            return chunk
        except zstandard.ZstdError as exc:
            raise BackendUnavailableError(BACKEND, f"blob '{key}' is corrupt: {exc}") from exc
        except OSError as exc:
            raise BackendUnavailableError(BACKEND, _reason(exc)) from exc

    def _delete(self, key: str) -> None:
        path = resolve_inside(self._root, key)
        root = self._root.resolve()
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise BackendUnavailableError(BACKEND, _reason(exc)) from exc
        with suppress(OSError):
            fsync_dir(path.parent)
        directory = path.parent
        while directory != root and directory.is_relative_to(root):
            try:
                directory.rmdir()
            except OSError:  # not empty (or already gone): stop pruning
                return
            directory = directory.parent


def _list_files(root: Path, prefix: str) -> list[BlobEntry]:
    """Regular files under ``root`` whose key starts with ``prefix``; temp files left out."""
    found: list[BlobEntry] = []
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            key = path.relative_to(root).as_posix()
            if _is_temp(name) or not key.startswith(prefix):
                continue
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                modified = datetime.fromtimestamp(info.st_mtime, tz=UTC)
                found.append(BlobEntry(key=key, size=info.st_size, modified_at=modified))
    return sorted(found, key=lambda entry: entry.key)


def _write_all(handle: IO[bytes], data: bytes, compressor: _Compressor | None = None) -> None:
    if compressor is not None:
        data = compressor.compress(data)
    try:
        if data:
            handle.write(data)
    except OSError as exc:
        raise BackendUnavailableError(BACKEND, _reason(exc)) from exc


def _discard_temp(handle: IO[bytes], temp: Path) -> None:
    with suppress(OSError):
        handle.close()
    with suppress(OSError):
        temp.unlink()


def _write(handle: IO[bytes], data: bytes, *, compress: bool) -> None:
    view = memoryview(data)
    if not compress:
        handle.write(view)
        return
    # compressobj rather than stream_writer: a failed write (ENOSPC) surfaces as the
    # OSError itself instead of a zstd error raised while closing the frame.
    compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL).compressobj(size=len(data))
    for start in range(0, len(view), WRITE_CHUNK):
        handle.write(compressor.compress(view[start : start + WRITE_CHUNK]))
    handle.write(compressor.flush())


# Below this much free space on the file store's file system, health says unavailable.
MIN_FREE_BYTES = 64 * 1024 * 1024


class FileBlobInspector:
    """Measures the blob directory: counts, sizes, free space and whether it is writable."""

    name = BACKEND

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    async def inspect(self, *, detailed: bool = False) -> BackendReport:
        return await anyio.to_thread.run_sync(lambda: self._inspect(detailed=detailed))

    async def probe(self) -> BackendReport:
        """The root exists and is a directory, and its file system has free space."""
        return await anyio.to_thread.run_sync(self._probe)

    def _probe(self) -> BackendReport:
        error: str | None = None
        free: int | None = None
        try:
            if not self._root.is_dir():
                self._root.mkdir(parents=True, exist_ok=True)
            usage = os.statvfs(self._root)
            free = usage.f_bavail * usage.f_frsize
        except OSError as exc:
            error = f"storage path {self._root} is not usable: {_reason(exc)}"
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

    def _inspect(self, *, detailed: bool) -> BackendReport:
        error = self._probe_writable()
        counts = _Walk(self._root)
        metrics: dict[str, MetricValue] = {
            "files": counts.files,
            "total_size_bytes": counts.total_size,
            "evaluations": counts.evaluations,
            "directories": counts.directories,
            "largest_file": counts.largest_file,
            "largest_file_bytes": counts.largest_size if counts.largest_file else None,
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
            return f"storage path {self._root} is not writable: {_reason(exc)}"
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

    def _count(self, path: Path, name: str) -> None:
        if _is_temp(name):
            self.temp_files += 1
            return
        try:
            size = path.lstat().st_size
        except OSError:
            return
        self.files += 1
        self.total_size += size
        self.by_kind[self._kind(name)] += 1
        if size > self.largest_size:
            self.largest_size = size
            self.largest_file = path.relative_to(self._root).as_posix()

    @staticmethod
    def _kind(name: str) -> str:
        for kind in ("output", "error"):
            if name.startswith(f"{kind}.") and name.endswith(".txt.zst"):
                return f"{kind}_compressed"
            if name.startswith(f"{kind}.") and name.endswith(".txt"):
                return f"{kind}_uncompressed"
        return "metadata" if name == "metadata.json" else "other"
