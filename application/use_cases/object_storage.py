"""Outputs in object storage: presigned links to them, and tiering old ones there."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import msgspec

from application.errors import (
    ApplicationError,
    EvaluationNotFoundError,
    NoDirectUrlError,
    require_found,
)
from application.ports.blob_urls import BlobUrls, SignedUrl
from application.ports.clock import Clock
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.unit_of_work import UnitOfWork
from application.services.payloads import PayloadStore
from application.use_cases.update_evaluation import RecordWriter
from domain.audit import AuditAction
from domain.blob_paths import evaluations_prefix, parse_blob_path
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId, parse_evaluation_id
from domain.payload import PayloadKind, PayloadLocation
from domain.tenancy import TenantId


@dataclass(frozen=True, slots=True)
class GetPayloadUrl:
    """A presigned GET URL of an output or error stored in S3."""

    repository: EvaluationRepository
    uow: UnitOfWork
    urls: BlobUrls

    async def execute(self, evaluation_id: EvaluationId, kind: PayloadKind) -> SignedUrl:
        """Raises ``NoDirectUrlError`` for a payload that is absent or not in S3."""
        evaluation = await self.repository.get(evaluation_id)
        await self.uow.release()
        evaluation = require_found(evaluation, evaluation_id)
        payload = evaluation.output if kind == "output" else evaluation.error
        if payload is None:
            raise NoDirectUrlError(evaluation_id, kind, None)
        if payload.location is not PayloadLocation.S3 or payload.key is None:
            raise NoDirectUrlError(evaluation_id, kind, payload.location)
        if self.urls.sealed:
            raise NoDirectUrlError(evaluation_id, kind, payload.location, sealed=True)
        return await self.urls.signed_get(payload.key)


_PAYLOAD_BLOB = re.compile(r"(?P<kind>output|error)\.[^/]+\.txt(\.zst)?")


class TierReport(msgspec.Struct, kw_only=True):
    """Running totals of one tiering pass (what would move, with ``dry_run``)."""

    dry_run: bool
    examined: int = 0
    moved: int = 0
    moved_bytes: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class TierPayloads:
    """Move outputs and errors older than a cut-off from the file store to S3.

    Per payload: copy the blob to S3 under the same key, then switch the
    record's location with the writer's compare-and-swap, which deletes the
    file once the switch committed. Readers see the file until the switch and
    the object after it; a record changed meanwhile keeps its new payload and
    the copy is removed, unless the record now points at that very object: two
    workers' passes may move the same payload at once. Interrupted anywhere, a
    rerun finishes the job: at worst an object no record points at (``fsck``
    finds it). ``stop`` is asked before each payload: once it answers True the
    pass ends there, never in the middle of a move.
    """

    payloads: PayloadStore
    writer: RecordWriter
    repository: EvaluationRepository
    uow: UnitOfWork
    clock: Clock
    tenant: TenantId

    async def execute(
        self,
        older_than: timedelta,
        *,
        dry_run: bool = False,
        limit: int | None = None,
        on_progress: Callable[[TierReport], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> TierReport:
        if not self.payloads.can_store_in(PayloadLocation.S3):
            raise ApplicationError("tiering needs S3: set S3_BUCKET")
        cutoff = self.clock.now() - older_than
        report = TierReport(dry_run=dry_run)
        candidates = [
            (entry, path, match)
            for entry in await self.payloads.entries_in(
                PayloadLocation.FILE, evaluations_prefix(self.tenant)
            )
            if entry.modified_at < cutoff
            and (path := parse_blob_path(entry.key)) is not None
            and (match := _PAYLOAD_BLOB.fullmatch(path.name)) is not None
        ]
        for entry, path, match in candidates:
            if limit is not None and report.moved >= limit:
                break
            if stop is not None and stop():
                break
            report.examined += 1
            kind: PayloadKind = "output" if match["kind"] == "output" else "error"
            evaluation_id = parse_evaluation_id(path.evaluation_id)
            moved = await self._tier_one(evaluation_id, kind, entry.key, dry_run)
            if moved:
                report.moved += 1
                report.moved_bytes += entry.size
            else:
                report.skipped += 1
            if on_progress is not None:
                on_progress(report)
        return report

    async def _tier_one(
        self, evaluation_id: EvaluationId, kind: PayloadKind, key: str, dry_run: bool
    ) -> bool:
        evaluation = await self.repository.get(evaluation_id)
        await self.uow.release()
        payload = None if evaluation is None else getattr(evaluation, kind)
        if payload is None or payload.key != key or payload.location is not PayloadLocation.FILE:
            return False  # an orphan (fsck's business) or already moved
        if dry_run:
            return True
        copy = await self.payloads.move(payload, PayloadLocation.S3)
        moved_by_another = False

        async def switch(current: Evaluation) -> bool:
            nonlocal moved_by_another
            now = getattr(current, kind)
            if now is None or now.key != key or now.location is not PayloadLocation.FILE:
                # Another pass (a second worker's) moved it first, to this very object.
                moved_by_another = (
                    now is not None and now.key == key and now.location is PayloadLocation.S3
                )
                return False
            setattr(current, kind, copy)
            return True

        try:
            _, changed = await self.writer.change(
                evaluation_id, switch, action=AuditAction.MAINTENANCE, keep=frozenset({key})
            )
        except EvaluationNotFoundError:
            changed = False
        # Any other error propagates and keeps the copy: the commit may have happened.
        if not changed and not moved_by_another:
            await self.payloads.discard_in(PayloadLocation.S3, key)
        return changed
