from abc import abstractmethod
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from application.ports.blob_store import BlobEntry


class Rewrap(StrEnum):
    """What re-wrapping did to one blob."""

    CURRENT = "current"  # already under the active key-encryption key
    REWRAPPED = "rewrapped"  # its data key re-wrapped; its ciphertext untouched
    SEALED = "sealed"  # stored in clear before, sealed now (encryption on)
    CLEAR = "clear"  # stored in clear, and left so (encryption off)


class SealedBlobs(Protocol):
    """A blob store whose blobs carry their data key wrapped by a key-encryption key."""

    @abstractmethod
    def entries(self, prefix: str = "") -> AsyncIterator[BlobEntry]:
        """Every blob whose key starts with ``prefix``."""

    @abstractmethod
    async def rewrap(self, key: str) -> Rewrap:
        """Put ``key``'s data key under the active key (sealing a clear blob when encryption
        is on), without re-encrypting its content; the blob's plaintext stays the same."""


@dataclass(frozen=True, slots=True)
class RewrapBatch:
    """One transaction of ``SealedRows.rewrap``: the rows it looked at, and what each of
    their sealed (or clear) values became."""

    rows: int
    outcomes: Counter[Rewrap]


class SealedRows(Protocol):
    """The database's sealed text values (records, events, log pieces)."""

    @abstractmethod
    async def count(self) -> int:
        """Rows to look at (for a progress bar's total)."""

    @abstractmethod
    def rewrap(self, batch_size: int) -> AsyncIterator[RewrapBatch]:
        """Re-wrap every sealed value under the active key (sealing clear values when
        encryption is on), a batch of rows per transaction. A value changed meanwhile by a
        write is left as that write stored it (already under the active key)."""
