"""The evaluation record and the rules for changing it."""

from datetime import datetime
from typing import Any

import msgspec

from domain.errors import InvalidTextError
from domain.identifiers import EvaluationId
from domain.payload import StoredPayload
from domain.status import EvaluationStatus, StatusMove, judge_move

JsonObject = dict[str, Any]


def ensure_storable_text(field: str, value: str) -> str:
    """Refuse text no backend can store faithfully (PostgreSQL rejects NUL in text)."""
    if "\x00" in value:
        raise InvalidTextError(field, "must not contain NUL characters")
    return value


def ensure_storable_json(field: str, value: Any) -> None:
    """Refuse NUL anywhere in a JSON value, keys included (JSONB cannot hold ``\\u0000``)."""
    if isinstance(value, str):
        ensure_storable_text(field, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            ensure_storable_text(field, key)
            ensure_storable_json(f"{field}.{key}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            ensure_storable_json(f"{field}[{index}]", item)


# Metadata key that keeps the fields of a request body this service does not know.
UNRECOGNIZED_KEY = "_unrecognized"

# The largest value of an INTEGER column (signed 32 bits): runtimes, retries, timeouts.
INTEGER_MAX = 2**31 - 1
# The largest runtime a record holds: the milliseconds of its INTEGER column.
MAX_RUNTIME_MS = INTEGER_MAX


class Evaluation(msgspec.Struct, kw_only=True):
    """One evaluation: its code, state, timings, payloads and container info.

    ``version`` grows by one on every committed change; it is the ETag and the
    guard against lost updates.
    """

    id: EvaluationId
    code: str
    language: str = "python"
    status: EvaluationStatus = EvaluationStatus.QUEUED
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    runtime_ms: int | None = None
    metadata: JsonObject = msgspec.field(default_factory=dict)
    output: StoredPayload | None = None
    error: StoredPayload | None = None
    celery_task_id: str | None = None
    retries: int = 0
    executor_id: str | None = None
    container_id: str | None = None
    exit_code: int | None = None
    timeout: int | None = None
    last_update: datetime | None = None
    retry_message: str | None = None
    final_failure: bool = False
    deleted_at: datetime | None = None
    version: int = 1

    def deep_copy(self) -> "Evaluation":
        """An independent copy (metadata included), through msgspec's builtins: about a
        fifteenth of ``copy.deepcopy``'s time, which every update paid."""
        return msgspec.convert(msgspec.to_builtins(self), Evaluation)

    def change_status(
        self, requested: EvaluationStatus, now: datetime, *, override: bool = False
    ) -> StatusMove:
        """Move to ``requested`` when the state machine says so; returns its judgement.

        A late report (``StatusMove.LATE``) changes nothing. ``override`` (an
        audited admin change) applies any move, terminal states included.
        Timestamps follow the state: ``started_at`` on entering running,
        ``completed_at`` (and ``runtime_ms`` when both ends are known) on a
        terminal state; an override back to a live state clears both.
        """
        move = judge_move(self.status, requested)
        if move is StatusMove.SAME:
            return move
        if move is StatusMove.LATE and not override:
            return move
        if override and self.status.is_terminal and not requested.is_terminal:
            self.completed_at = None
            self.runtime_ms = None
        self.status = requested
        if requested is EvaluationStatus.RUNNING and self.started_at is None:
            self.started_at = now
        if requested is EvaluationStatus.QUEUED:
            self.executor_id = None
            self.container_id = None
        if requested.is_terminal:
            if self.completed_at is None:
                self.completed_at = now
            if self.runtime_ms is None and self.started_at is not None:
                elapsed = self.completed_at - self.started_at
                runtime_ms = max(0, int(elapsed.total_seconds() * 1000))
                # Beyond what a runtime can hold (about 24.8 days) the two ends are not
                # one run's: the runtime stays unknown rather than clipped.
                if runtime_ms <= MAX_RUNTIME_MS:
                    self.runtime_ms = runtime_ms
        return StatusMove.APPLY

    def merge_metadata(self, changes: JsonObject) -> None:
        """Shallow-merge ``changes`` into the metadata: later keys win.

        Unrecognized fields accumulate: a later body's do not erase an earlier one's.
        """
        merged = {**self.metadata, **changes}
        kept, new = self.metadata.get(UNRECOGNIZED_KEY), changes.get(UNRECOGNIZED_KEY)
        if isinstance(kept, dict) and isinstance(new, dict):
            merged[UNRECOGNIZED_KEY] = {**kept, **new}
        self.metadata = merged

    def touch(self, now: datetime) -> None:
        """Record a committed change: a new version and update time."""
        self.updated_at = now
        self.version += 1
