"""Read models: list filters, pages, statistics and backend reports."""

from datetime import datetime
from typing import Literal

import msgspec

from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.timestamps import as_utc

BackendState = Literal["healthy", "degraded", "unavailable"]
MetricValue = int | float | str | None


class ListCursor(msgspec.Struct, frozen=True, array_like=True):
    """Keyset position: the last item's ``created_at`` and ``id`` (newest first)."""

    created_at: datetime
    id: EvaluationId


class EvaluationFilter(msgspec.Struct, frozen=True, kw_only=True):
    status: EvaluationStatus | None = None
    language: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    id_prefix: str | None = None

    def __post_init__(self) -> None:
        for name in ("created_after", "created_before"):
            value = getattr(self, name)
            if value is not None:
                msgspec.structs.force_setattr(self, name, as_utc(value))


class EvaluationQuery(msgspec.Struct, frozen=True, kw_only=True):
    filter: EvaluationFilter = EvaluationFilter()
    limit: int = 50
    offset: int = 0
    cursor: ListCursor | None = None
    include_total: bool = False


class EvaluationPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Evaluation]
    next_cursor: ListCursor | None
    total: int | None = None


class RuntimeStatistics(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    average_ms: float | None
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None
    max_ms: int | None


class EvaluationStatistics(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    by_status: dict[str, int]
    by_language: dict[str, int]
    runtime: RuntimeStatistics
    bytes_by_location: dict[str, int]
    events: int
    log_bytes: int


class BackendReport(msgspec.Struct, frozen=True, kw_only=True):
    """A backend as it is right now: measured, never assumed."""

    name: str
    type: str
    status: BackendState
    metrics: dict[str, MetricValue] = msgspec.field(default_factory=dict)
    details: dict[str, MetricValue] = msgspec.field(default_factory=dict)
    error: str | None = None


class RunningInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Container info of an evaluation in ``provisioning`` or ``running``."""

    evaluation_id: EvaluationId
    status: EvaluationStatus
    executor_id: str | None = None
    container_id: str | None = None
    started_at: datetime | None = None

    @classmethod
    def of(cls, evaluation: Evaluation) -> "RunningInfo":
        return cls(
            evaluation_id=evaluation.id,
            status=evaluation.status,
            executor_id=evaluation.executor_id,
            container_id=evaluation.container_id,
            started_at=evaluation.started_at,
        )
