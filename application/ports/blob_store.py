from abc import abstractmethod
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

import msgspec


class BlobEntry(msgspec.Struct, frozen=True):
    """One stored blob: its key, bytes on storage and last change."""

    key: str
    size: int
    modified_at: datetime


class BlobStore(Protocol):
    """Large payloads by key. Keys ending in ``.zst`` are stored zstd-compressed.

    ``put`` is atomic: a reader sees the old content or the new, never a mix.
    """

    @abstractmethod
    async def put(self, key: str, data: bytes) -> int:
        """Store ``data`` (compressing for ``.zst`` keys); returns the bytes written."""

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The original (decompressed) bytes; raises ``BlobMissingError``."""

    @abstractmethod
    async def put_stream(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        """Store a stream as ``put`` does, holding one chunk at a time; returns bytes written.

        If ``chunks`` raises (the client went away, the text is refused), the
        error propagates and the previous content of ``key`` is left as it was.
        """

    @abstractmethod
    def stream(self, key: str, chunk_size: int = 65_536, start: int = 0) -> AsyncIterator[bytes]:
        """The original bytes from byte ``start`` on, in chunks, never the whole blob at once."""

    @abstractmethod
    def stream_stored(self, key: str, chunk_size: int = 65_536) -> AsyncIterator[bytes]:
        """The bytes as stored (still zstd-compressed for ``.zst`` keys), for pass-through."""

    @abstractmethod
    async def stored_size(self, key: str) -> int:
        """Bytes ``stream_stored`` yields; raises ``BlobMissingError``."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    @abstractmethod
    def entries(self, prefix: str = "") -> AsyncIterator[BlobEntry]:
        """Every blob whose key starts with ``prefix`` (writes in progress excluded)."""
