import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import anyio
import msgspec

from application.errors import (
    BackendUnavailableError,
    BlobMissingError,
    require_found,
)
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.event_log import EventLog
from application.ports.log_store import LogStore
from application.ports.unit_of_work import UnitOfWork
from application.services.payloads import PayloadStore
from application.use_cases.storage_report import StorageConfiguration
from application.use_cases.update_evaluation import RecordWriter
from domain.audit import AuditAction
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.payload import (
    ByteRange,
    PayloadKind,
    PayloadLocation,
    RequestedRange,
    StoredPayload,
    clamp_range,
)
from domain.timeline import EvaluationEvent


class TimelineEntry(msgspec.Struct, kw_only=True, frozen=True):
    timestamp: datetime
    event: str
    details: str


class CompleteEvaluation(msgspec.Struct, kw_only=True, frozen=True):
    evaluation: Evaluation
    output: str | None
    error: str | None
    logs: str
    events: list[EvaluationEvent]
    # What lives where: "metadata", "events", "logs", and "output"/"error" when stored.
    storage_locations: dict[str, str]
    timeline: list[TimelineEntry]


def timeline_of(evaluation: Evaluation, events: list[EvaluationEvent]) -> list[TimelineEntry]:
    """Creation, start, every event and the end, in time order (equal times: that order)."""
    entries = [
        TimelineEntry(
            timestamp=evaluation.created_at, event="created", details="Evaluation created"
        )
    ]
    if evaluation.started_at is not None:
        entries.append(
            TimelineEntry(timestamp=evaluation.started_at, event="started", details="Started")
        )
    entries += [
        TimelineEntry(
            timestamp=event.timestamp, event=event.event_type, details=event.message or ""
        )
        for event in events
    ]
    if evaluation.completed_at is not None:
        status = evaluation.status.value
        entries.append(
            TimelineEntry(
                timestamp=evaluation.completed_at, event=status, details=f"Status: {status}"
            )
        )
    return sorted(entries, key=lambda entry: entry.timestamp)


@dataclass(frozen=True, slots=True)
class GetCompleteEvaluation:
    """The record with its full output and error, logs and events: every artifact,
    where each is stored, and the timeline they make."""

    repository: EvaluationRepository
    payloads: PayloadStore
    logs: LogStore
    events: EventLog
    configuration: StorageConfiguration

    async def execute(self, evaluation_id: EvaluationId) -> CompleteEvaluation:
        evaluation = require_found(await self.repository.get(evaluation_id), evaluation_id)
        events = await self.events.list(evaluation_id)
        return CompleteEvaluation(
            evaluation=evaluation,
            output=await self.payloads.read_text(evaluation.output),
            error=await self.payloads.read_text(evaluation.error),
            logs=(await self.logs.read(evaluation_id)).content,
            events=events,
            storage_locations=self._locations(evaluation),
            timeline=timeline_of(evaluation, events),
        )

    def _locations(self, evaluation: Evaluation) -> dict[str, str]:
        records = self.configuration.records_backend
        locations = {"metadata": records, "events": records, "logs": records}
        for kind, payload in (("output", evaluation.output), ("error", evaluation.error)):
            if payload is None:
                continue
            if payload.key is None or payload.location is PayloadLocation.INLINE:
                locations[kind] = records
            else:
                locations[kind] = self.configuration.location_of(
                    payload.location.value, payload.key
                )
        return locations


class PayloadContent(msgspec.Struct, frozen=True, kw_only=True):
    """What to send for one output or error: ``length`` bytes from ``chunks``.

    ``byte_range`` is set for a partial answer; ``encoding`` is ``"zstd"`` when
    the stored compressed bytes are passed through as they are.
    """

    evaluation: Evaluation
    payload: StoredPayload | None
    chunks: AsyncIterator[bytes] | None = None
    length: int = 0
    byte_range: ByteRange | None = None
    encoding: str | None = None


@dataclass(frozen=True, slots=True)
class ReadPayload:
    """Stream one output or error from wherever it lives: whole, a byte range, or as stored."""

    # A write may commit and delete the blob the record pointed at between the
    # read of the record and the opening of the blob: read the record again.
    ATTEMPTS = 3

    repository: EvaluationRepository
    payloads: PayloadStore
    uow: UnitOfWork

    async def execute(
        self,
        evaluation_id: EvaluationId,
        kind: PayloadKind,
        *,
        byte_range: RequestedRange | None = None,
        if_version: int | None = None,
        accept_zstd: bool = False,
    ) -> PayloadContent:
        """Raises ``UnsatisfiableRangeError`` for a range wholly outside the content.

        ``if_version`` keeps ``byte_range`` only while the record is still at that
        version, so a resumed download never joins bytes of two versions. The
        blob is opened before this returns: a missing one raises
        ``BlobMissingError`` here, not once its bytes are being sent.
        """
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                content = await self._read(evaluation_id, kind, byte_range, if_version, accept_zstd)
                if content.chunks is None:
                    return content
                first = await anext(content.chunks, b"")
            except BlobMissingError:
                if attempt == self.ATTEMPTS:
                    raise
                continue
            return msgspec.structs.replace(content, chunks=_prepend(first, content.chunks))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(
        self,
        evaluation_id: EvaluationId,
        kind: PayloadKind,
        requested: RequestedRange | None,
        if_version: int | None,
        accept_zstd: bool,
    ) -> PayloadContent:
        evaluation = await self.repository.get(evaluation_id)
        await self.uow.release()  # the body may take minutes to send
        evaluation = require_found(evaluation, evaluation_id)
        payload = evaluation.output if kind == "output" else evaluation.error
        if payload is None:
            return PayloadContent(evaluation=evaluation, payload=None)
        if if_version is not None and if_version != evaluation.version:
            requested = None
        byte_range = None if requested is None else clamp_range(requested, payload.size)
        if byte_range is None and accept_zstd:
            stored = await self.payloads.stored_form(payload)
            if stored is not None:
                size, chunks = stored
                return PayloadContent(
                    evaluation=evaluation,
                    payload=payload,
                    chunks=chunks,
                    length=size,
                    encoding="zstd",
                )
        return PayloadContent(
            evaluation=evaluation,
            payload=payload,
            chunks=self.payloads.stream(payload, byte_range),
            length=payload.size if byte_range is None else byte_range.length,
            byte_range=byte_range,
        )


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


@dataclass(frozen=True, slots=True)
class UploadPayload:
    """Receive an output or error as a streamed body, routed once its size is known.

    The blob is written (atomically) before any record points at it; attaching it
    (``AttachPayload``, through failover) is the caller's next step, and a caller
    that cannot attach it discards it.
    """

    writer: RecordWriter
    payloads: PayloadStore
    uow: UnitOfWork

    async def receive(
        self,
        evaluation_id: EvaluationId,
        kind: PayloadKind,
        chunks: AsyncIterator[bytes],
        *,
        check_exists: bool = True,
    ) -> StoredPayload:
        """Store the body; ``check_exists`` answers 404 before reading it when the
        primary says so (failover turns it off while the journal may hold the record)."""
        if check_exists:
            try:
                await self.writer.load(evaluation_id)
                await self.uow.release()  # the body may take minutes to arrive
            except BackendUnavailableError:
                pass  # the primary is down: failover decides once the body is safe
        return await self.payloads.store_stream(self.writer.tenant, evaluation_id, kind, chunks)

    async def discard(self, stored: StoredPayload) -> None:
        """Delete a received blob that no record will point at."""
        if stored.key is not None:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self.payloads.discard(stored.key)


@dataclass(frozen=True, slots=True)
class AttachPayload:
    """Point the record at an output or error that is already stored."""

    writer: RecordWriter

    async def execute(
        self, evaluation_id: EvaluationId, kind: PayloadKind, stored: StoredPayload
    ) -> Evaluation:
        async def mutate(evaluation: Evaluation) -> bool:
            setattr(evaluation, kind, stored)
            return True

        keep = frozenset() if stored.key is None else frozenset({stored.key})
        evaluation, _ = await self.writer.change(
            evaluation_id, mutate, action=_UPLOAD_ACTIONS[kind], keep=keep
        )
        return evaluation


_UPLOAD_ACTIONS = {"output": AuditAction.UPLOAD_OUTPUT, "error": AuditAction.UPLOAD_ERROR}
