"""The record mirror in memory (use-case tests), and the one that keeps nothing."""

import builtins
from collections.abc import AsyncIterator

from application.ports.record_mirror import (
    MirroredEvaluation,
    MirrorReader,
    RecordMirror,
    Unreadable,
)
from application.queries import RecordTally
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId, qualified_id
from domain.timeline import EvaluationEvent, LogChunk, log_with_gaps

_Key = tuple[TenantId, EvaluationId]


class MemoryRecordMirror(RecordMirror, MirrorReader):
    """Keeps the newest version of each record, events once, log pieces at their offsets,
    by tenant and id."""

    def __init__(self) -> None:
        self._records: dict[_Key, Evaluation] = {}
        self._events: dict[_Key, dict[str, EvaluationEvent]] = {}
        self._logs: dict[_Key, bytearray] = {}

    async def record(self, tenant: TenantId, evaluation: Evaluation) -> None:
        held = self._records.get((tenant, evaluation.id))
        if held is None or held.version < evaluation.version:
            self._records[tenant, evaluation.id] = evaluation.deep_copy()

    async def event(self, tenant: TenantId, event: EvaluationEvent) -> None:
        held = self._events.setdefault((tenant, event.evaluation_id), {})
        held.setdefault(event.event_id, event)

    async def log(self, tenant: TenantId, chunk: LogChunk) -> None:
        data = self._logs.setdefault((tenant, chunk.evaluation_id), bytearray())
        piece = chunk.content.encode()
        if len(data) < chunk.end:
            data.extend(bytes(chunk.end - len(data)))
        data[chunk.offset : chunk.end] = piece

    async def forget(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        key = (tenant, evaluation_id)
        self._records.pop(key, None)
        self._events.pop(key, None)
        self._logs.pop(key, None)

    async def count(self) -> int:
        return len(self._records)

    async def tallies(self, tenant: TenantId) -> dict[str, RecordTally]:
        return {
            str(evaluation_id): RecordTally(
                version=record.version,
                events=len(self._events.get((owner, evaluation_id), {})),
                log_bytes=len(self._logs.get((owner, evaluation_id), b"")),
            )
            for (owner, evaluation_id), record in self._records.items()
            if owner == tenant
        }

    async def evaluations(self) -> AsyncIterator[MirroredEvaluation | Unreadable]:
        for key in sorted(self._records):
            events = sorted(self._events.get(key, {}).values(), key=lambda event: event.timestamp)
            text, gap = log_with_gaps(bytes(self._logs.get(key, b"")))
            name = qualified_id(*key)
            yield MirroredEvaluation(
                tenant=key[0],
                record=self._records[key].deep_copy(),
                events=builtins.list(events),
                log=text,
                problems=[] if gap is None else [f"{name}: a log gap at byte {gap}"],
            )


class NoRecordMirror(RecordMirror):
    """``FILE_MIRROR=false``: nothing is copied."""

    async def record(self, tenant: TenantId, evaluation: Evaluation) -> None:  # noqa: ARG002
        return None  # keeps nothing

    async def event(self, tenant: TenantId, event: EvaluationEvent) -> None:  # noqa: ARG002
        return None

    async def log(self, tenant: TenantId, chunk: LogChunk) -> None:  # noqa: ARG002
        return None

    async def forget(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:  # noqa: ARG002
        return None
