from abc import abstractmethod
from datetime import datetime
from typing import Protocol

import msgspec


class SignedUrl(msgspec.Struct, frozen=True):
    """A URL that reads one blob without credentials until ``expires_at``."""

    url: str
    expires_at: datetime
    # "zstd" when the URL serves the compressed form (``.zst`` keys), else None.
    content_encoding: str | None = None


class BlobUrls(Protocol):
    """Direct, time-limited links to blobs, for stores that can issue them (S3)."""

    # Blobs are encrypted at rest: a link would hand out ciphertext, so none is made.
    sealed: bool = False

    @abstractmethod
    async def signed_get(self, key: str) -> SignedUrl:
        """A presigned GET of ``key``; raises ``BackendUnavailableError`` if none can be made."""
