"""One directory level of the blob store, for a read-only tree browser."""

import re
from datetime import datetime

import msgspec

from application.errors import InvalidRequestError
from application.ports.backend_inspector import BackendInspector
from application.ports.blob_directories import (
    BlobDirectories,
    BlobDirectory,
    BlobDirectoryPage,
    BlobFile,
)
from application.ports.blob_store import BlobStore
from domain.blob_paths import TENANTS
from domain.tenancy import DEFAULT_TENANT, TenantId

_SEGMENT = re.compile(r"[A-Za-z0-9_:][A-Za-z0-9._:-]{0,254}")
MAX_ENTRIES = 500


class BlobListing(msgspec.Struct, frozen=True, kw_only=True):
    """What lies directly under ``path`` ("" is the root; else it ends with '/')."""

    path: str
    directories: list[BlobDirectory]
    files: list[BlobFile]
    truncated: bool
    # The cursor of the next page (``after``) when truncated.
    next_after: str | None = None
    # When the directories' totals come from the inspector's kept walk (approximate).
    totals_measured_at: datetime | None = None

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


def tenant_root(tenant: TenantId) -> str:
    """Where ``tenant``'s browsing starts and stays: the whole store for the default
    tenant (the deployment's own, ADR 0032), ``tenants/<tenant>/`` for another."""
    return "" if tenant == DEFAULT_TENANT else f"{TENANTS}/{tenant}/"


def parse_after(raw: str) -> str:
    """The cursor of a page: an entry's name, with '/' for a directory ("" the first page)."""
    name = raw.strip()
    if name and not _SEGMENT.fullmatch(name.removesuffix("/")):
        raise InvalidRequestError("after", "is not an entry of the blob store")
    return name


def _rank(name: str, *, directory: bool) -> tuple[int, str]:
    """Directories first, then files, each by name."""
    return (0, name) if directory else (1, name)


def _cursor_rank(after: str) -> tuple[int, str]:
    return _rank(after.removesuffix("/"), directory=after.endswith("/"))


class BrowseBlobs:
    """One level of the store, at most ``MAX_ENTRIES`` entries a page.

    When the file store's inspector keeps its walk (``BlobDirectories``) the level is
    read without walking below it, the directories' totals taken from that walk;
    other stores (S3, memory) list the keys under the prefix and add them up.
    """

    def __init__(
        self, blobs: BlobStore, inspectors: list[BackendInspector], tenant: TenantId
    ) -> None:
        self._blobs = blobs
        self._root = tenant_root(tenant)
        self._directories = next(
            (found for found in inspectors if isinstance(found, BlobDirectories)), None
        )

    async def execute(self, path: str = "", after: str = "") -> BlobListing:
        prefix = parse_blob_directory(path) or self._root
        if not prefix.startswith(self._root):  # another tenant's, or the deployment's
            raise InvalidRequestError("path", "is not a directory of the caller's tenant")
        cursor = parse_after(after)
        if self._directories is not None:
            page = await self._directories.directory(prefix, after=cursor, limit=MAX_ENTRIES)
        else:
            page = await self._listed(prefix, cursor)
        shown = [f"{d.name}/" for d in page.directories] + [f.name for f in page.files]
        return BlobListing(
            path=prefix,
            directories=page.directories,
            files=page.files,
            truncated=page.more,
            next_after=shown[-1] if page.more and shown else None,
            totals_measured_at=page.totals_measured_at,
        )

    async def _listed(self, prefix: str, after: str) -> BlobDirectoryPage:
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
        start = _cursor_rank(after) if after else (-1, "")
        ranked = sorted(
            [(_rank(name, directory=True), name) for name in directories]
            + [(_rank(f.name, directory=False), f.name) for f in files]
        )
        page = [name_rank for name_rank in ranked if name_rank[0] > start]
        chosen = page[:MAX_ENTRIES]
        by_name = {f.name: f for f in files}
        return BlobDirectoryPage(
            directories=[
                BlobDirectory(
                    name=name,
                    path=f"{prefix}{name}/",
                    files=directories[name][0],
                    size=directories[name][1],
                )
                for (kind, _), name in chosen
                if kind == 0
            ],
            files=[by_name[name] for (kind, _), name in chosen if kind == 1],
            more=len(page) > MAX_ENTRIES,
        )
