"""Blobs as files under ``FILE_STORAGE_PATH``.

Writes are atomic and durable (``infrastructure.files.durable``): after a crash a
reader finds the old content or the new, never a torn file. Keys ending in
``.zst`` are zstd-compressed on the way in and out, a chunk at a time. All
blocking I/O runs in worker threads so the event loop never waits on the disk.
"""

import functools
import os
import stat
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol, TypeVar

import anyio.to_thread
import zstandard

from application.ports.blob_store import BlobEntry, BlobStore
from infrastructure.files.durable import AtomicWrite, is_temp
from infrastructure.files.errors import BACKEND, translate_errors
from infrastructure.files.keys import is_compressed_key, resolve_inside
from infrastructure.metrics import blob_bytes, timed

COMPRESSION_LEVEL = 3
WRITE_CHUNK = 1024 * 1024
# Above this, one compression takes long enough to stall the event loop: a thread does it.
_COMPRESS_IN_THREAD = 256 * 1024

T = TypeVar("T")


async def compressed(data: bytes) -> bytes:
    """``data`` as one zstd frame, as every store writes a ``.zst`` key."""
    compress = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL).compress
    if len(data) > _COMPRESS_IN_THREAD:
        return await anyio.to_thread.run_sync(compress, data)
    return compress(data)


def check_stream_range(chunk_size: int, start: int) -> None:
    """The arguments ``BlobStore.stream`` refuses, in every store."""
    if chunk_size <= 0 or start < 0:
        raise ValueError("chunk_size must be positive and start not negative")


class _Compressor(Protocol):
    """zstandard's compressobj (its class is not exported by every backend)."""

    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


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


class FileBlobStore(BlobStore):
    """``BlobStore`` on a local (or mounted) directory; keys never leave ``root``."""

    def __init__(self, root: Path, *, compress: bool = True) -> None:
        """``compress=False``: ``.zst`` keys are stored as given (``SealedBlobStore``
        compresses before it seals)."""
        self._root = Path(root)
        self._compress = compress

    def _compresses(self, key: str) -> bool:
        return self._compress and is_compressed_key(key)

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
        check_stream_range(chunk_size, start)
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
        compress = self._compresses(key)
        with translate_errors(key):
            target = await self._in_thread(lambda: AtomicWrite(path, root))
        compressor = (
            zstandard.ZstdCompressor(level=COMPRESSION_LEVEL).compressobj() if compress else None
        )
        try:
            async for chunk in chunks:
                # Compression runs in the worker thread too, off the event loop.
                await self._in_thread(
                    functools.partial(_write_all, key, target.handle, chunk, compressor)
                )
            written = await self._in_thread(lambda: _finish_stream(target, compressor))
            blob_bytes("written", written)
            return written
        except BaseException:
            # The stream failed (client gone, bad text, full disk): the old blob stays.
            with anyio.CancelScope(shield=True):
                await self._in_thread(target.discard)
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
        with translate_errors(key, writing=True):
            target = AtomicWrite(path, root)
            try:
                _write(target.handle, data, compress=self._compresses(key))
            except BaseException:
                target.discard()
                raise
            return target.commit()

    @staticmethod
    def _open_stored(key: str, path: Path) -> IO[bytes]:
        with translate_errors(key, missing=True):
            return path.open("rb")

    @staticmethod
    def _skip(key: str, reader: _ChunkReader, count: int) -> None:
        with translate_errors(key, decoding=True):
            reader.skip(count)

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
        with translate_errors(key, missing=True):
            return _ChunkReader(path, compressed=self._compresses(key), chunk_size=chunk_size)

    @staticmethod
    def _read(key: str, reader: _ChunkReader, size: int) -> bytes:
        with translate_errors(key, decoding=True):
            chunk = reader.read(size)
            blob_bytes("read", len(chunk))
            return chunk

    def _delete(self, key: str) -> None:
        path = resolve_inside(self._root, key)
        root = self._root.resolve()
        with translate_errors(key):
            try:
                path.unlink()
            except (FileNotFoundError, NotADirectoryError):
                return
        # No fsync of the directory: a power cut that undoes the unlink leaves an orphan,
        # which nothing points at and fsck removes (ADR 0004); not worth a disk flush per
        # replaced payload.
        directory = path.parent
        while directory != root and directory.is_relative_to(root):
            try:
                directory.rmdir()
            except OSError:  # not empty (or already gone): stop pruning
                return
            directory = directory.parent


def _finish_stream(target: AtomicWrite, compressor: _Compressor | None) -> int:
    """Close the frame, make the file durable and move it into place (in a thread)."""
    with translate_errors(target.path.name, writing=True):
        if compressor is not None:
            target.handle.write(compressor.flush())
        return target.commit()


def _list_files(root: Path, prefix: str) -> list[BlobEntry]:
    """Regular files under ``root`` whose key starts with ``prefix``; temp files left out.

    Only the directory the prefix names (up to its last '/') is walked, not the whole tree.
    """
    found: list[BlobEntry] = []
    directories = prefix.split("/")[:-1]
    if any(part in ("", ".", "..") for part in directories):
        return found  # no stored key has such a segment (resolve_inside refuses it)
    start = root.joinpath(*directories)
    if start.resolve() != root.resolve().joinpath(*directories):
        return found  # a symlink on the way: a walk from the root would not follow it
    for directory, _dirs, names in os.walk(start):
        for name in names:
            path = Path(directory) / name
            key = path.relative_to(root).as_posix()
            if is_temp(name) or not key.startswith(prefix):
                continue
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                modified = datetime.fromtimestamp(info.st_mtime, tz=UTC)
                found.append(BlobEntry(key=key, size=info.st_size, modified_at=modified))
    return sorted(found, key=lambda entry: entry.key)


def _write_all(
    key: str, handle: IO[bytes], data: bytes, compressor: _Compressor | None = None
) -> None:
    if compressor is not None:
        data = compressor.compress(data)
    with translate_errors(key):
        if data:
            handle.write(data)


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
