from abc import abstractmethod
from typing import Protocol, runtime_checkable

from application.ports.blob_store import BlobEntry


@runtime_checkable
class LargestBlobs(Protocol):
    """A blob inspector that finds the largest blobs in the measurement it already makes,
    so the details page needs no second listing of the store."""

    @abstractmethod
    async def largest(self) -> tuple[list[BlobEntry], int]:
        """The largest blobs (at most 50), largest first, the first found among equals;
        and how many blobs there are. From the same measurement as ``inspect``."""
