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
from domain.timeline import EvaluationEvent, LogChunk, log_with_gaps


class MemoryRecordMirror(RecordMirror, MirrorReader):
    """Keeps the newest version of each record, events once, log pieces at their offsets."""

    def __init__(self) -> None:
        self._records: dict[EvaluationId, Evaluation] = {}
        self._events: dict[EvaluationId, dict[str, EvaluationEvent]] = {}
        self._logs: dict[EvaluationId, bytearray] = {}

    async def record(self, evaluation: Evaluation) -> None:
        held = self._records.get(evaluation.id)
        if held is None or held.version < evaluation.version:
            self._records[evaluation.id] = evaluation.deep_copy()

    async def event(self, event: EvaluationEvent) -> None:
        self._events.setdefault(event.evaluation_id, {}).setdefault(event.event_id, event)

    async def log(self, chunk: LogChunk) -> None:
        data = self._logs.setdefault(chunk.evaluation_id, bytearray())
        piece = chunk.content.encode()
        if len(data) < chunk.end:
            data.extend(bytes(chunk.end - len(data)))
        data[chunk.offset : chunk.end] = piece

    async def forget(self, evaluation_id: EvaluationId) -> None:
        self._records.pop(evaluation_id, None)
        self._events.pop(evaluation_id, None)
        self._logs.pop(evaluation_id, None)

    async def count(self) -> int:
        return len(self._records)

    async def tallies(self) -> dict[str, RecordTally]:
        return {
            str(key): RecordTally(
                version=record.version,
                events=len(self._events.get(key, {})),
                log_bytes=len(self._logs.get(key, b"")),
            )
            for key, record in self._records.items()
        }

    async def evaluations(self) -> AsyncIterator[MirroredEvaluation | Unreadable]:
        for evaluation_id in sorted(self._records):
            events = sorted(
                self._events.get(evaluation_id, {}).values(), key=lambda event: event.timestamp
            )
            text, gap = log_with_gaps(bytes(self._logs.get(evaluation_id, b"")))
            yield MirroredEvaluation(
                record=self._records[evaluation_id].deep_copy(),
                events=builtins.list(events),
                log=text,
                problems=[] if gap is None else [f"{evaluation_id}: a log gap at byte {gap}"],
            )


class NoRecordMirror(RecordMirror):
    """``FILE_MIRROR=false``: nothing is copied."""

    async def record(self, evaluation: Evaluation) -> None:  # noqa: ARG002 - keeps nothing
        return None

    async def event(self, event: EvaluationEvent) -> None:  # noqa: ARG002 - keeps nothing
        return None

    async def log(self, chunk: LogChunk) -> None:  # noqa: ARG002 - keeps nothing
        return None

    async def forget(self, evaluation_id: EvaluationId) -> None:  # noqa: ARG002 - holds nothing
        return None
