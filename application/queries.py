"""Read models: list filters, pages, statistics and backend reports."""

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, Literal

import msgspec

from application.search import TextSearch
from domain.evaluation import Evaluation, ensure_storable_text
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.timestamps import as_utc

BackendState = Literal["healthy", "degraded", "unavailable"]
# ``float`` takes ints too; ``int | float`` would document two matching ``oneOf`` branches.
MetricValue = float | str | None


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
    # Evaluations whose code, output, error, log or events hold a text (README, Search).
    search: TextSearch | None = None

    def __post_init__(self) -> None:
        for name in ("created_after", "created_before"):
            value = getattr(self, name)
            if value is not None:
                msgspec.structs.force_setattr(self, name, as_utc(value))


def check_filter_text(criteria: EvaluationFilter) -> None:
    """Refuse filter text no store can hold (a NUL), naming the field: never a 5xx."""
    for name in ("language", "id_prefix"):
        value = getattr(criteria, name)
        if value is not None:
            ensure_storable_text(name, value)


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


# Record fields a client may ask for by name (``fields=``), as the domain names them.
# ``id`` and ``version`` come with every projection (identity and ETag).
PROJECTABLE_FIELDS = frozenset(
    name for name in Evaluation.__struct_fields__ if name not in {"deleted_at"}
)
ALWAYS_PROJECTED = frozenset({"id", "version"})
# Field name -> domain value (``output``/``error`` are ``StoredPayload | None``).
Projection = dict[str, Any]


def check_projection(fields: frozenset[str]) -> frozenset[str]:
    """The fields to read: the known ones asked for plus ``id`` and ``version``."""
    unknown = fields - PROJECTABLE_FIELDS
    if unknown:
        raise ValueError(
            f"unknown field(s): {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(PROJECTABLE_FIELDS))}"
        )
    return fields | ALWAYS_PROJECTED


def project(evaluation: Evaluation, fields: frozenset[str]) -> Projection:
    """The projection of a whole record (what the SQL adapters read column by column)."""
    return {name: getattr(evaluation, name) for name in fields | ALWAYS_PROJECTED}


class ProjectedPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Projection]
    next_cursor: ListCursor | None
    total: int | None = None


class RuntimeStatistics(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    average_ms: float | None
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None
    max_ms: int | None


# The runtime percentiles every adapter reports (``RuntimeStatistics.p50_ms`` ...).
PERCENTILES = (50, 95, 99)


def nearest_rank(percentile: int, count: int) -> int:
    """Zero-based position of the nearest-rank ``percentile`` in ``count`` sorted values."""
    return max(0, -(-percentile * count // 100) - 1)


class EvaluationStatistics(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    by_status: dict[str, int]
    by_language: dict[str, int]
    runtime: RuntimeStatistics
    bytes_by_location: dict[str, int]
    events: int
    log_bytes: int
    # Outputs and errors by location (``inline``, ``file``, ``s3``), as counted with the bytes.
    payloads_by_location: dict[str, int] = msgspec.field(default_factory=dict)


class HourCount(msgspec.Struct, frozen=True):
    """Live evaluations created in the UTC clock hour that starts at ``hour``."""

    hour: datetime
    count: int


class BackendReport(msgspec.Struct, frozen=True, kw_only=True):
    """A backend as it is right now: measured, never assumed."""

    name: str
    type: str
    status: BackendState
    metrics: dict[str, MetricValue] = msgspec.field(default_factory=dict)
    details: dict[str, MetricValue] = msgspec.field(default_factory=dict)
    # Named lists a detailed inspection found: table columns, a sample of cache keys.
    listings: dict[str, list[str]] = msgspec.field(default_factory=dict)
    error: str | None = None
    # Figures per class of what the backend holds: the cache's ``KEY_CLASSES``
    # (docs/cache-analytics.md); empty for the other backends.
    classes: dict[str, dict[str, MetricValue]] = msgspec.field(default_factory=dict)


class RunningInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Container info of an evaluation in ``provisioning`` or ``running``.

    ``executor_id`` is the platform's job name (its gateway kills by it);
    ``timeout`` is the job's deadline in seconds.
    """

    evaluation_id: EvaluationId
    status: EvaluationStatus
    executor_id: str | None = None
    container_id: str | None = None
    started_at: datetime | None = None
    timeout: int | None = None

    @classmethod
    def of(cls, evaluation: Evaluation) -> "RunningInfo":
        return cls(
            evaluation_id=evaluation.id,
            status=evaluation.status,
            executor_id=evaluation.executor_id,
            container_id=evaluation.container_id,
            started_at=evaluation.started_at,
            timeout=evaluation.timeout,
        )

    def filled_from(self, other: "RunningInfo | None") -> "RunningInfo":
        """This info, with the container fields it lacks taken from ``other``.

        Only ``None`` is filled: a value this info holds is never replaced.
        """
        if other is None:
            return self
        return msgspec.structs.replace(
            self,
            executor_id=self.executor_id if self.executor_id is not None else other.executor_id,
            container_id=self.container_id if self.container_id is not None else other.container_id,
            started_at=self.started_at if self.started_at is not None else other.started_at,
            timeout=self.timeout if self.timeout is not None else other.timeout,
        )


class DayStatusCount(msgspec.Struct, frozen=True):
    """Live evaluations created on one UTC ``day`` that are now in ``status``."""

    day: date
    status: str
    count: int


# (bucket, inclusive upper bound in seconds): how cache inspectors report key TTLs.
TTL_BUCKETS: tuple[tuple[str, int], ...] = (
    ("ttl_up_to_1m", 60),
    ("ttl_1m_to_10m", 600),
    ("ttl_10m_to_1h", 3_600),
)
TTL_BUCKET_NAMES = ("ttl_none", *(name for name, _ in TTL_BUCKETS), "ttl_over_1h")
# How many cache keys a detailed inspection lists by name.
KEY_SAMPLE = 100
CACHE_KEY_PATTERNS = ("keys_eval", "keys_running", "keys_logs", "keys_running_set", "keys_other")


def ttl_bucket(ttl: float) -> str:
    """The bucket of a remaining TTL in seconds; a negative TTL means none."""
    if ttl < 0:
        return "ttl_none"
    for bucket, bound in TTL_BUCKETS:
        if ttl <= bound:
            return bucket
    return "ttl_over_1h"


# The platform's running set (ADR 0014); another tenant's is ``running_evaluations:{<tenant>}``.
RUNNING_SET = "running_evaluations"


def cache_key_pattern(key: str) -> str:
    """The pattern a cache key (without deployment prefix) is counted under."""
    if key.endswith(":running"):
        return "keys_running"
    if key.startswith("eval:"):
        return "keys_eval"
    if key.startswith("logs:"):
        return "keys_logs"
    if key == RUNNING_SET or (key.startswith(f"{RUNNING_SET}:{{") and key.endswith("}")):
        return "keys_running_set"  # the platform's set, or another tenant's (ADR 0032)
    return "keys_other"


# What a cache key holds, for the cache's analytics: the record cache, the running
# registry (the platform's entries, the set and its state), the log tails (this
# service's and the platform worker's latest batch), and anything else under our prefix.
KEY_CLASSES = ("records", "running", "log_tail", "other")


def key_class(key: str) -> str:
    """The class of a cache key (without deployment prefix), one of ``KEY_CLASSES``."""
    if key.endswith(":running") or key == RUNNING_SET or key.startswith(f"{RUNNING_SET}:"):
        return "running"
    if key.startswith("eval:"):
        return "records"
    if key.startswith("logs:"):
        return "log_tail"
    return "other"


def count_key_patterns(keys: Iterable[str]) -> dict[str, int]:
    """How many of ``keys`` fall under each of ``CACHE_KEY_PATTERNS`` (zeros included)."""
    counted = Counter(cache_key_pattern(key) for key in keys)
    return {pattern: counted.get(pattern, 0) for pattern in CACHE_KEY_PATTERNS}


def count_ttl_buckets(ttls: Iterable[float]) -> dict[str, int]:
    """How many of ``ttls`` fall in each of ``TTL_BUCKET_NAMES`` (zeros included)."""
    counted = Counter(ttl_bucket(ttl) for ttl in ttls)
    return {bucket: counted.get(bucket, 0) for bucket in TTL_BUCKET_NAMES}


class RecordTally(msgspec.Struct, frozen=True):
    """How far one record's history goes: its version, its events, its log's bytes. A
    copy whose tally is short of the index's in any of the three misses a write."""

    version: int
    events: int = 0
    log_bytes: int = 0

    def short_of(self, other: "RecordTally") -> bool:
        return (
            self.version < other.version
            or self.events < other.events
            or self.log_bytes < other.log_bytes
        )
