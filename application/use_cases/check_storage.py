"""``fsck``: blobs and records that disagree, found (and orphans removed) after a crash."""

from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from application.errors import JournalPendingError
from application.ports.blob_store import BlobStore
from application.ports.clock import Clock
from application.ports.evaluation_queries import EvaluationQueries
from application.ports.journal import Journal
from application.services.payloads import PayloadStore, is_mirror_file
from domain.blob_paths import evaluations_prefix, parse_blob_path
from domain.tenancy import TenantId

METADATA_NAME = "metadata.json"


class StorageCheck(msgspec.Struct, kw_only=True):
    """What a check found: blobs no record points at, and keys records point at in vain."""

    blobs: int
    referenced: int
    orphans: list[str]
    orphan_bytes: int
    missing: list[str]
    young: list[str]
    removed: list[str]

    @property
    def clean(self) -> bool:
        """Nothing left to fix: no missing blob, no orphan that was not removed."""
        return not self.missing and set(self.orphans) <= set(self.removed)


@dataclass(frozen=True, slots=True)
class CheckStorage:
    """Compare the blob store with the records (soft-deleted ones keep their blobs): the
    tenant's blobs with the tenant's records.

    The service writes a blob before the record that points at it commits, so
    a crash in between leaves an orphan, never a missing blob. A blob younger
    than ``grace`` may belong to a write still in progress: it is reported as
    young and never removed.

    A fix is refused (``JournalPendingError``) while the failover journal holds
    writes: a journaled upload's blob is written, its record is not in the
    database yet, so the blob looks like an orphan whatever its age.
    """

    queries: EvaluationQueries
    blobs: BlobStore
    clock: Clock
    journal: Journal
    payloads: PayloadStore
    tenant: TenantId

    async def execute(self, *, fix: bool = False, grace: timedelta) -> StorageCheck:
        if fix and await self.journal.has_pending():
            raise JournalPendingError
        referenced = await self.queries.blob_keys()
        owners = {path.evaluation_id for key in referenced if (path := parse_blob_path(key))}
        cutoff: datetime = self.clock.now() - grace
        found: set[str] = set()
        orphans: list[str] = []
        young: list[str] = []
        orphan_bytes = 0
        async for entry in self.blobs.entries(evaluations_prefix(self.tenant)):
            found.add(entry.key)
            if entry.key in referenced or _is_owned_snapshot(entry.key, owners):
                continue
            if self.payloads.mirrored and is_mirror_file(entry.key):  # the mirror's, not a blob
                continue
            if entry.modified_at > cutoff:
                young.append(entry.key)
                continue
            orphans.append(entry.key)
            orphan_bytes += entry.size
        removed: list[str] = []
        if fix:
            for key in orphans:
                await self.blobs.delete(key)
                removed.append(key)
        return StorageCheck(
            blobs=len(found),
            referenced=len(referenced),
            orphans=orphans,
            orphan_bytes=orphan_bytes,
            missing=sorted(referenced - found),
            young=young,
            removed=removed,
        )


def _is_owned_snapshot(key: str, owners: set[str]) -> bool:
    path = parse_blob_path(key)
    return path is not None and path.name == METADATA_NAME and path.evaluation_id in owners
