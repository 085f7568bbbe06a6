"""Blobs in a dict, for ``STORAGE_BACKEND=memory`` and the fast tests.

Keys are checked and sizes accounted exactly as the file store does them
(``.zst`` keys report their zstd-compressed size), so the two stay
interchangeable behind the ``BlobStore`` port.
"""

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import zstandard

from application.backends import Backend
from application.errors import BlobMissingError
from application.ports.blob_store import BlobEntry, BlobStore
from application.queries import BackendReport
from domain.blob_paths import parse_blob_path
from infrastructure.files.blob_store import COMPRESSION_LEVEL, check_stream_range, compressed
from infrastructure.files.keys import check_blob_key, is_compressed_key
from infrastructure.memory.inspector import MemoryInspector


class MemoryBlobStore(BlobStore):
    """``BlobStore`` in process memory; contents are kept uncompressed for simple reads."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._blobs: dict[str, tuple[bytes, int]] = {}
        self._modified: dict[str, datetime] = {}
        self._clock = clock

    async def put(self, key: str, data: bytes) -> int:
        check_blob_key(key)
        data = bytes(data)
        size = len(data)
        if is_compressed_key(key):
            size = len(await compressed(data))
        self._blobs[key] = (data, size)
        self._modified[key] = self._clock()
        return size

    async def get(self, key: str) -> bytes:
        check_blob_key(key)
        try:
            return self._blobs[key][0]
        except KeyError:
            raise BlobMissingError(key) from None

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        check_blob_key(key)
        parts = [chunk async for chunk in chunks]
        return await self.put(key, b"".join(parts))

    async def stream(
        self, key: str, chunk_size: int = 65_536, start: int = 0
    ) -> AsyncIterator[bytes]:
        check_stream_range(chunk_size, start)
        data = await self.get(key)
        for offset in range(start, len(data), chunk_size):
            yield data[offset : offset + chunk_size]

    async def stream_stored(self, key: str, chunk_size: int = 65_536) -> AsyncIterator[bytes]:
        data = await self._stored(key)
        for offset in range(0, len(data), chunk_size):
            yield data[offset : offset + chunk_size]

    async def stored_size(self, key: str) -> int:
        return len(await self._stored(key))

    async def _stored(self, key: str) -> bytes:
        data = await self.get(key)
        if not is_compressed_key(key):
            return data
        return zstandard.ZstdCompressor(level=COMPRESSION_LEVEL).compress(data)

    async def delete(self, key: str) -> None:
        check_blob_key(key)
        self._blobs.pop(key, None)
        self._modified.pop(key, None)

    async def entries(self, prefix: str = "") -> AsyncIterator[BlobEntry]:
        for key, (_data, size) in sorted(self._blobs.items()):
            if key.startswith(prefix):
                yield BlobEntry(key=key, size=size, modified_at=self._modified[key])

    def stored(self) -> dict[str, int]:
        """Key → bytes it would occupy on disk (for the inspector)."""
        return {key: size for key, (_data, size) in self._blobs.items()}


class MemoryBlobInspector(MemoryInspector):
    """Reports the in-memory blob store under the blob slot's name (``file``)."""

    name: str = Backend.FILE

    def __init__(self, store: MemoryBlobStore) -> None:
        self._store = store

    async def inspect(self, *, detailed: bool = False) -> BackendReport:
        stored = self._store.stored()
        evaluations = {path[:2] for key in stored if (path := parse_blob_path(key)) is not None}
        directories = {
            "/".join(parts[:depth])
            for parts in (key.split("/") for key in stored)
            for depth in range(1, len(parts))
        }
        largest = max(stored, key=lambda key: stored[key], default=None)
        details: dict[str, int | float | str | None] = {}
        if detailed:
            details["compressed_files"] = sum(1 for key in stored if is_compressed_key(key))
        return self.healthy(
            metrics={
                "files": len(stored),
                "total_size_bytes": sum(stored.values()),
                "evaluations": len(evaluations),
                "directories": len(directories),
                "largest_file": largest,
                "largest_file_bytes": None if largest is None else stored[largest],
            },
            details=details,
        )
