"""The detailed page of one backend: the records, the blob store or the cache."""

from datetime import datetime
from typing import Any

import msgspec

from application.queries import BackendReport, BackendState
from application.use_cases.storage_report import DatabaseDetails, FileDetails
from interfaces.http.schemas.records import EvaluationBody
from interfaces.http.schemas.storage import Figure, platform_name


class EvaluationsTableBody(msgspec.Struct, kw_only=True):
    count: int
    by_status: dict[str, int]
    columns: list[str]


class TableBody(msgspec.Struct, kw_only=True):
    count: int
    columns: list[str]


class DatabaseTablesBody(msgspec.Struct, kw_only=True):
    evaluations: EvaluationsTableBody
    evaluation_events: TableBody


class MeasuredBody(msgspec.Struct, kw_only=True):
    """This service's own figures of a backend, beside the platform's shape of a page."""

    name: str
    type: str
    status: BackendState
    metrics: dict[str, Figure]
    details: dict[str, Figure]
    error: str | None


def _measured(report: BackendReport) -> dict[str, Any]:
    """The ``MeasuredBody`` fields of ``report``."""
    return {
        "name": report.name,
        "type": report.type,
        "status": report.status,
        "metrics": report.metrics,
        "details": report.details,
        "error": report.error,
    }


def _int(value: Figure) -> int:
    return int(value) if isinstance(value, int | float) else 0


class DatabaseDetailsBody(MeasuredBody, kw_only=True):
    """The records backend: live records by status, the newest, and measured figures."""

    backend: str
    connection: str  # "postgresql", "sqlite" or "memory"
    tables: DatabaseTablesBody
    recent_evaluations: list[EvaluationBody]

    @classmethod
    def of(cls, found: DatabaseDetails) -> "DatabaseDetailsBody":
        report = found.report
        return cls(
            backend=report.name,
            connection=report.type,
            tables=DatabaseTablesBody(
                evaluations=EvaluationsTableBody(
                    count=_int(report.metrics.get("evaluations")),
                    by_status=found.by_status,
                    columns=report.listings.get("evaluations_columns", []),
                ),
                evaluation_events=TableBody(
                    count=_int(report.metrics.get("events")),
                    columns=report.listings.get("evaluation_events_columns", []),
                ),
            ),
            recent_evaluations=[EvaluationBody.of(e) for e in found.recent],
            **_measured(report),
        )


class FileEntryBody(msgspec.Struct, kw_only=True):
    path: str  # the blob's key: its path under the root
    size: int  # bytes as stored (compressed when the key ends in .zst)
    modified: datetime


class FileDetailsBody(MeasuredBody, kw_only=True):
    """The blob store: its largest files (at most 50) and measured figures."""

    backend: str
    path: str  # FILE_STORAGE_PATH, or the s3:// or memory:// root
    files: list[FileEntryBody]
    total_files: int

    @classmethod
    def of(cls, found: FileDetails) -> "FileDetailsBody":
        report = found.report
        return cls(
            backend=report.name,
            path=found.root,
            files=[
                FileEntryBody(path=entry.key, size=entry.size, modified=entry.modified_at)
                for entry in found.largest
            ],
            total_files=found.total_files,
            **_measured(report),
        )


class CacheInfoBody(msgspec.Struct, kw_only=True):
    keys: list[str]  # a sample: the first 100 of our keys by name, prefix left out
    memory: dict[str, Figure]
    stats: dict[str, Figure]
    # By key class (records, running, log_tail, other): this process's hits, misses and
    # hit rate; keys, memory (``memory_sampled`` keys measured) and TTLs by bucket;
    # evictions and expirations where counted per class (docs/cache-analytics.md).
    classes: dict[str, dict[str, Figure]]
    # What warming did: entries it wrote, record hits they served, their share of hits.
    warming: dict[str, Figure]


_WARMING = {"warm_fills": "fills", "warm_hits": "hits", "warm_hit_share": "hit_share"}
_CACHE_STATS = (
    "keys",
    "entries",
    "hits",
    "misses",
    "hit_rate",
    "evictions",
    "expirations",
    "keys_exact",
    "server_keyspace_hits",
    "server_keyspace_misses",
    "server_evicted_keys",
    "server_expired_keys",
    "max_entries",
    "ttl_seconds",
)


class CacheDetailsBody(MeasuredBody, kw_only=True):
    """The cache (and the running registry beside it), named ``redis`` by the platform's
    pages whether it is Redis or in this process: ``backend`` says which."""

    backend: str  # "redis" or "memory"
    info: CacheInfoBody

    @classmethod
    def of(cls, report: BackendReport) -> "CacheDetailsBody":
        figures = {**report.metrics, **report.details}
        return cls(
            backend=platform_name(report),
            info=CacheInfoBody(
                keys=report.listings.get("keys", []),
                memory={key: value for key, value in figures.items() if "memory" in key},
                stats={key: figures[key] for key in _CACHE_STATS if key in figures},
                classes=dict(report.classes),
                warming={name: figures.get(key) for key, name in _WARMING.items()},
            ),
            **_measured(report),
        )
