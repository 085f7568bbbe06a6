"""One directory level of the blob store, for a read-only tree browser."""

import re

import msgspec

from application.errors import InvalidRequestError
from application.ports.blob_store import BlobEntry, BlobStore

_SEGMENT = re.compile(r"[A-Za-z0-9_:][A-Za-z0-9._:-]{0,254}")
MAX_ENTRIES = 500


class BlobDirectory(msgspec.Struct, frozen=True):
    name: str
    path: str
    files: int
    size: int


class BlobFile(msgspec.Struct, frozen=True):
    name: str
    entry: BlobEntry


class BlobListing(msgspec.Struct, frozen=True, kw_only=True):
    """What lies directly under ``path`` ("" is the root; else it ends with '/')."""

    path: str
    directories: list[BlobDirectory]
    files: list[BlobFile]
    truncated: bool

    @property
    def crumbs(self) -> list[tuple[str, str]]:
        """(name, path) of every ancestor directory, the root first."""
        parts = self.path.split("/")[:-1]
        return [(part, "/".join(parts[: index + 1]) + "/") for index, part in enumerate(parts)]


def parse_blob_directory(raw: str) -> str:
    """A directory path made of key segments, normalised to end in '/' ("" for the root).

    Only names a blob key may contain pass: no '..', no absolute path, no backslash.
    """
    parts = [part for part in raw.strip().split("/") if part]
    for part in parts:
        if not _SEGMENT.fullmatch(part) or ".." in part:
            raise InvalidRequestError("path", "is not a directory of the blob store")
    return "".join(f"{part}/" for part in parts)


class BrowseBlobs:
    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    async def execute(self, path: str = "") -> BlobListing:
        prefix = parse_blob_directory(path)
        directories: dict[str, list[int]] = {}
        files: list[BlobFile] = []
        async for entry in self._blobs.entries(prefix):
            name, slash, _rest = entry.key[len(prefix) :].partition("/")
            if slash:
                totals = directories.setdefault(name, [0, 0])
                totals[0] += 1
                totals[1] += entry.size
            else:
                files.append(BlobFile(name=name, entry=entry))
        listed = [
            BlobDirectory(name=name, path=f"{prefix}{name}/", files=count, size=size)
            for name, (count, size) in sorted(directories.items())
        ]
        truncated = len(listed) + len(files) > MAX_ENTRIES
        listed = listed[:MAX_ENTRIES]
        return BlobListing(
            path=prefix,
            directories=listed,
            files=files[: MAX_ENTRIES - len(listed)],
            truncated=truncated,
        )
