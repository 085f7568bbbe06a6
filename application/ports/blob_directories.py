from abc import abstractmethod
from datetime import datetime
from typing import Protocol, runtime_checkable

import msgspec

from application.ports.blob_store import BlobEntry


class BlobDirectory(msgspec.Struct, frozen=True):
    """A directory of blob keys and the files and bytes under it, at any depth."""

    name: str
    path: str
    files: int
    size: int


class BlobFile(msgspec.Struct, frozen=True):
    name: str
    entry: BlobEntry


class BlobDirectoryPage(msgspec.Struct, frozen=True, kw_only=True):
    """Directories first, then files, each by name, after ``after``; ``more`` when the
    level holds further entries. ``totals_measured_at`` is set when the directories'
    totals come from an earlier measurement (so are approximate), ``None`` when counted
    for this page."""

    directories: list[BlobDirectory]
    files: list[BlobFile]
    more: bool
    totals_measured_at: datetime | None = None


@runtime_checkable
class BlobDirectories(Protocol):
    """A blob inspector that lists one level of the store without walking what lies below:
    the directories' totals come from the measurement it already keeps."""

    @abstractmethod
    async def directory(self, prefix: str, *, after: str, limit: int) -> BlobDirectoryPage:
        """At most ``limit`` entries directly under ``prefix`` ("" or ending in '/'),
        named after ``after`` ("" from the first)."""
