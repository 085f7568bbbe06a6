from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import Protocol


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
    def stream(self, key: str, chunk_size: int = 65_536) -> AsyncIterator[bytes]:
        """The original bytes in chunks, without holding the whole blob in memory."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
