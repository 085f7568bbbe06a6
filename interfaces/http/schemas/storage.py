"""Storage configuration, statistics and the overview of every backend.

The platform's field names first (its gateway and storage pages read them),
then this service's further figures.
"""

from datetime import datetime
from typing import Any

import msgspec

from application.backends import Backend
from application.queries import TTL_BUCKET_NAMES, BackendReport, BackendState, RuntimeStatistics
from application.use_cases.statistics import StatisticsReport
from application.use_cases.storage_report import (
    StorageConfiguration,
    StorageOverview,
    StorageSummary,
)


class StorageThresholdsBody(msgspec.Struct, kw_only=True):
    inline_threshold: int  # LARGE_FILE_THRESHOLD: larger outputs go to the blob store
    preview_size: int
    compression_threshold: int


class StorageInfoBody(msgspec.Struct, kw_only=True):
    """How this instance stores data, as configured at start (no secrets)."""

    primary_backend: str
    fallback_backend: str | None  # null: no fallback (FALLBACK_BACKEND=none)
    cache_enabled: bool
    large_output_storage: str  # "file", "s3" or "memory"
    storage_thresholds: StorageThresholdsBody
    backends_available: list[str]
    database: str
    cache: str  # "redis", "memory" or "disabled"
    file_storage_path: str
    large_file_threshold: int
    compression_threshold: int
    preview_size: int
    cache_ttl: int
    max_request_bytes: int

    @classmethod
    def of(cls, configuration: StorageConfiguration) -> "StorageInfoBody":
        c = configuration
        return cls(
            primary_backend=c.primary_backend,
            fallback_backend=None if c.fallback_backend == "none" else c.fallback_backend,
            cache_enabled=c.caching_enabled,
            large_output_storage=c.blob_backend,
            storage_thresholds=StorageThresholdsBody(
                inline_threshold=c.large_file_threshold,
                preview_size=c.preview_size,
                compression_threshold=c.compression_threshold,
            ),
            backends_available=c.backends_available,
            database=c.database,
            cache=c.cache,
            file_storage_path=c.file_storage_path,
            large_file_threshold=c.large_file_threshold,
            compression_threshold=c.compression_threshold,
            preview_size=c.preview_size,
            cache_ttl=c.cache_ttl,
            max_request_bytes=c.max_request_bytes,
        )


class StatisticsStorageBody(msgspec.Struct, kw_only=True):
    primary_backend: str
    cache_enabled: bool
    large_output_storage: str
    # Outputs and errors stored outside the database (files or S3).
    large_outputs_externalized: int


class StatisticsBody(msgspec.Struct, kw_only=True):
    """Aggregates over live evaluations: from counters kept in each write's transaction
    (constant time), and the last 24 hours from the ``created_at`` index."""

    total_evaluations: int
    by_status: dict[str, int]
    by_language: dict[str, int]
    average_runtime_ms: float | None
    success_rate: float  # completed / (completed + failed); 0.0 when neither
    last_24h_count: int
    peak_hour: datetime | None  # start of the UTC hour of the last 24 with most creations
    storage_info: StatisticsStorageBody
    runtime: RuntimeStatistics
    bytes_by_location: dict[str, int]
    payloads_by_location: dict[str, int]
    events: int
    log_bytes: int

    @classmethod
    def of(cls, report: StatisticsReport) -> "StatisticsBody":
        totals, configuration = report.totals, report.configuration
        outside = sum(n for where, n in totals.payloads_by_location.items() if where != "inline")
        return cls(
            total_evaluations=totals.total,
            by_status=totals.by_status,
            by_language=totals.by_language,
            average_runtime_ms=totals.runtime.average_ms,
            success_rate=report.success_rate,
            last_24h_count=report.last_24h_count,
            peak_hour=report.peak_hour,
            storage_info=StatisticsStorageBody(
                primary_backend=configuration.primary_backend,
                cache_enabled=configuration.caching_enabled,
                large_output_storage=configuration.blob_backend,
                large_outputs_externalized=outside,
            ),
            runtime=totals.runtime,
            bytes_by_location=totals.bytes_by_location,
            payloads_by_location=totals.payloads_by_location,
            events=totals.events,
            log_bytes=totals.log_bytes,
        )


# A measured figure as it is sent: a backend may report a flag (Redis' ``keys_exact``).
Figure = bool | float | str | None

# Metric names of this service -> the platform's, by the name it gives the backend.
_PLATFORM_METRICS: dict[str, dict[str, str]] = {
    "redis": {"hits": "cache_hits", "misses": "cache_misses"},
    "memory": {"hits": "cache_hits", "misses": "cache_misses", "evictions": "eviction_count"},
}
# Figures the detailed cache report holds that the overview of the cache shows.
_CACHE_FIGURES: dict[str, dict[str, str]] = {
    "redis": {"used_memory_bytes": "memory_used_bytes"},
    "memory": {"keys_eval": "cached_evaluations", "used_memory_bytes": "cache_size_bytes"},
}


def platform_name(report: BackendReport) -> str:
    """The platform's name of a backend: the cache is ``redis`` or ``memory`` by its kind."""
    if report.name == Backend.CACHE and report.type in _PLATFORM_METRICS:
        return report.type
    return report.name


def _ttl_stats(report: BackendReport) -> dict[str, int]:
    """Keys by remaining time to live, from the sample a detailed inspection took."""
    return {
        name: int(value)
        for name in (*TTL_BUCKET_NAMES, "ttl_sampled_keys")
        if isinstance(value := report.details.get(name), int | float)
    }


def platform_metrics(report: BackendReport) -> dict[str, Any]:
    """The report's metrics under the platform's names, with the cache's detailed figures."""
    name = platform_name(report)
    renamed = _PLATFORM_METRICS.get(name, {})
    metrics: dict[str, Any] = {
        renamed.get(key, key): value for key, value in report.metrics.items()
    }
    if name in _CACHE_FIGURES:
        for key, platform_key in _CACHE_FIGURES[name].items():
            metrics.pop(key, None)
            metrics[platform_key] = report.details.get(key, report.metrics.get(key))
        metrics["ttl_stats"] = _ttl_stats(report)
    return metrics


class BackendOverviewBody(msgspec.Struct, kw_only=True):
    type: str
    status: BackendState
    metrics: dict[str, Any]
    error: str | None


class StorageOverviewBody(msgspec.Struct, kw_only=True):
    """Every backend measured now. ``backends`` is keyed by the platform's names:
    ``database``, ``file``, ``redis`` or ``memory`` (the cache), ``fallback``."""

    status: BackendState
    summary: StorageSummary
    backends: dict[str, BackendOverviewBody]

    @classmethod
    def of(cls, overview: StorageOverview) -> "StorageOverviewBody":
        return cls(
            status=overview.status,
            summary=overview.summary,
            backends={
                platform_name(report): BackendOverviewBody(
                    type=report.type,
                    status=report.status,
                    metrics=platform_metrics(report),
                    error=report.error,
                )
                for report in overview.backends.values()
            },
        )
