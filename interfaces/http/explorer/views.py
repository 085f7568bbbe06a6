"""What the explorer's templates show, computed from use-case results (no I/O here)."""

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import msgspec

from application.errors import InvalidRequestError
from application.queries import (
    CACHE_KEY_PATTERNS,
    KEY_CLASSES,
    TTL_BUCKET_NAMES,
    BackendReport,
    EvaluationFilter,
    MetricValue,
)
from application.search import SearchField, TextSearch, text_search
from domain.errors import InvalidTextError
from domain.status import EvaluationStatus
from interfaces.http.explorer.charts import human_bytes, moment_label

STATUS_CLASSES = {status.value: f"s-{status.value}" for status in EvaluationStatus}
TABLE_SUFFIXES = ("_rows", "_bytes")
PATTERN_LABELS = {
    "keys_eval": "eval:{id} records",
    "keys_running": "eval:{id}:running",
    "keys_logs": "logs:{id}:latest",
    "keys_running_set": "running_evaluations",
    "keys_other": "other",
}
WARMING_LABELS = {
    "warm_fills": "Entries warming wrote",
    "warm_hits": "Record hits they served",
    "warm_hit_share": "Share of record hits",
}
CACHE_CHARTED = frozenset(
    {*CACHE_KEY_PATTERNS, *TTL_BUCKET_NAMES, *WARMING_LABELS, "used_memory_bytes"}
)
CLASS_LABELS = {
    "records": "Records",
    "running": "Running registry",
    "log_tail": "Log tails",
    "other": "Other keys",
}
# Shown in the database page's table of tables (as "≈" beside a row count).
DATABASE_TABULATED = frozenset({"estimated_row_counts"})
TTL_LABELS = {
    "ttl_none": "no expiry",
    "ttl_up_to_1m": "≤ 1 min",
    "ttl_1m_to_10m": "1 to 10 min",
    "ttl_10m_to_1h": "10 min to 1 h",
    "ttl_over_1h": "> 1 h",
}


class ListForm(msgspec.Struct, kw_only=True):
    """The list filters as typed in the form, plus what they mean and what was refused."""

    status: str = ""
    language: str = ""
    created_from: str = ""
    created_to: str = ""
    id_prefix: str = ""
    q: str = ""  # text to search for, or a pattern when ``regex`` is set
    regex: str = ""
    where: str = ""  # one field to look in; empty: all
    errors: list[str] = msgspec.field(default_factory=list)

    def criteria(self) -> EvaluationFilter:
        """The filter; a value that cannot be read is reported in ``errors`` and ignored."""
        status = None
        if self.status:
            try:
                status = EvaluationStatus(self.status)
            except ValueError:
                self.errors.append(f"Unknown status “{self.status}”.")
        after = self._day("created_from", "Created from")
        until = self._day("created_to", "Created until")
        return EvaluationFilter(
            status=status,
            language=self.language.strip()[:50] or None,
            created_after=None if after is None else datetime.combine(after, time.min, UTC),
            created_before=(
                None
                if until is None
                else datetime.combine(until + timedelta(days=1), time.min, UTC)
            ),
            id_prefix=self.id_prefix.strip()[:255] or None,
            search=self._search(),
        )

    def _search(self) -> TextSearch | None:
        if not self.q:
            return None
        text, pattern = (None, self.q) if self.regex else (self.q, None)
        try:
            return text_search(text, pattern, self.where or None)
        except (InvalidRequestError, InvalidTextError) as exc:
            reason = exc.message if isinstance(exc, InvalidRequestError) else exc.reason
            self.errors.append(f"Search: {reason}.")
            return None

    def _day(self, field: str, label: str) -> date | None:
        raw: str = getattr(self, field).strip()
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            self.errors.append(f"{label} must be a date such as 2024-07-01, not “{raw}”.")
            return None

    def query_string(self, **extra: str) -> str:
        values = {
            name: getattr(self, name)
            for name in (
                "status",
                "language",
                "created_from",
                "created_to",
                "id_prefix",
                "q",
                "regex",
                "where",
            )
            if getattr(self, name)
        }
        values.update(extra)
        return urlencode(values)

    @property
    def active(self) -> bool:
        return bool(self.query_string())


# Where a match is on a record's page: the section each searched field is shown in.
MATCH_ANCHORS = {
    SearchField.CODE: "code-h",
    SearchField.OUTPUT: "output",
    SearchField.ERROR: "error",
    SearchField.LOGS: "logs-h",
    SearchField.EVENTS: "timeline",
}


def table_sizes(report: BackendReport) -> list[dict[str, Any]]:
    """Rows of ``(table, rows, bytes, estimated)`` from a database report's details:
    ``<table>_rows``, ``<table>_bytes`` and the tables ``estimated_row_counts`` names."""
    estimated = set(str(report.details.get("estimated_row_counts") or "").split(", "))
    tables = []
    for key, value in report.details.items():
        if key.endswith("_rows"):
            name = key.removesuffix("_rows")
            tables.append(
                {
                    "name": name,
                    "rows": value,
                    "bytes": report.details.get(f"{name}_bytes"),
                    "estimated": name in estimated,
                }
            )
    return tables


def other_details(
    report: BackendReport, skip: frozenset[str] = frozenset()
) -> dict[str, MetricValue]:
    """Details not already drawn elsewhere on the page (``skip``, per-table sizes)."""
    tables = {f"{row['name']}{suffix}" for row in table_sizes(report) for suffix in TABLE_SUFFIXES}
    return {
        key: value for key, value in report.details.items() if key not in skip and key not in tables
    }


def cache_patterns(report: BackendReport) -> list[tuple[str, float]]:
    return [
        (PATTERN_LABELS[name], float(_number(report.details.get(name))))
        for name in CACHE_KEY_PATTERNS
        if name in report.details
    ]


def cache_ttls(report: BackendReport) -> list[tuple[str, float]]:
    return [
        (TTL_LABELS[name], float(_number(report.details.get(name))))
        for name in TTL_BUCKET_NAMES
        if name in report.details
    ]


def class_rows(report: BackendReport) -> list[dict[str, Any]]:
    """One row per key class: its label and figures (``memory_estimated`` when sampled)."""
    rows = []
    for name in KEY_CLASSES:
        figures = report.classes.get(name)
        if figures is None:
            continue
        keys, sampled = _number(figures.get("keys")), _number(figures.get("memory_sampled"))
        rows.append(
            {"name": name, "label": CLASS_LABELS[name], "memory_estimated": sampled < keys}
            | figures
        )
    return rows


def class_hit_rates(report: BackendReport) -> list[tuple[str, float]]:
    """Percent of lookups that hit, for each class this process looked up."""
    return [
        (row["label"], 100 * float(row["hit_rate"]))
        for row in class_rows(report)
        if isinstance(row.get("hit_rate"), int | float)
    ]


def class_memory(report: BackendReport) -> list[tuple[str, float]]:
    return [
        (row["label"], _number(row.get("memory_bytes")))
        for row in class_rows(report)
        if row.get("keys")
    ]


def class_ttls(report: BackendReport) -> dict[str, list[int]]:
    """Sampled keys by TTL bucket (in ``TTL_BUCKET_NAMES`` order), per class label; the
    classes with no sampled key are left out (as the chart leaves them out of its colours)."""
    counts = {
        row["label"]: [int(_number(row.get(bucket))) for bucket in TTL_BUCKET_NAMES]
        for row in class_rows(report)
    }
    return {label: values for label, values in counts.items() if any(values)}


def warming(report: BackendReport) -> dict[str, MetricValue]:
    return {label: report.details.get(key) for key, label in WARMING_LABELS.items()}


def cache_memory(report: BackendReport) -> MetricValue:
    return report.metrics.get("used_memory_bytes", report.details.get("used_memory_bytes"))


def hit_rate(reports: dict[str, BackendReport]) -> float | None:
    cache = reports.get("cache")
    value = None if cache is None else cache.metrics.get("hit_rate")
    return value if isinstance(value, float | int) else None


def _number(value: MetricValue) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def metric_value(value: MetricValue, name: str = "") -> str:
    """A metric as people read it: sizes in bytes humanised, rates as percentages."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and "bytes" in name:
        return human_bytes(value)
    if isinstance(value, float) and "rate" in name:
        return f"{value:.1%}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def metric_label(name: str) -> str:
    return name.replace("_", " ").capitalize().replace("Ttl", "TTL")


def when(value: datetime | None) -> str:
    return "—" if value is None else moment_label(value.astimezone(UTC))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
