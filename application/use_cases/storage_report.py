import heapq
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec

from application.backends import Backend
from application.errors import BackendUnavailableError, UnknownBackendError
from application.failover.report import JournalInspector
from application.ports.backend_inspector import BackendInspector
from application.ports.blob_store import BlobEntry, BlobStore
from application.ports.evaluation_queries import EvaluationQueries
from application.ports.health_probe import HealthProbe
from application.ports.largest_blobs import LargestBlobs
from application.queries import BackendReport, BackendState, EvaluationQuery
from application.services.single_flight import SingleFlight
from application.services.storage_audience import StorageAudience
from domain.evaluation import Evaluation

# Other names the cache is asked for by: the platform's pages call it ``redis`` even
# when it lives in this process.
CACHE_ALIASES = frozenset({Backend.REDIS})
# What the database and file details list: the newest records, the largest files.
RECENT_EVALUATIONS = 10
LARGEST_FILES = 50


class StorageConfiguration(msgspec.Struct, frozen=True, kw_only=True):
    """How this instance stores data, as configured at start (no secrets)."""

    primary_backend: str
    fallback_backend: str
    database: str
    cache: str
    caching_enabled: bool
    file_storage_path: str
    large_file_threshold: int
    compression_threshold: int
    preview_size: int
    cache_ttl: int
    max_request_bytes: int
    # Where outputs and errors over the threshold go: "file", "s3" or "memory".
    blob_backend: str
    # Where the cache and the running registry live ("redis" or "memory"), caching on or off.
    cache_backend: str
    # For each blob location in use ("file", "s3"): the URL its keys are relative to.
    blob_urls: dict[str, str]

    @property
    def records_backend(self) -> str:
        """Where records, events and logs live: "database" (SQL) or "memory"."""
        return self.primary_backend

    @property
    def backends_available(self) -> list[str]:
        """The storage this instance uses, each named once: records, blobs, cache, fallback."""
        tiers = [location for location in self.blob_urls if location == Backend.S3]
        names = [self.records_backend, self.blob_backend, *tiers, self.cache_backend]
        if self.fallback_backend != "none":
            names.append(self.fallback_backend)
        return list(dict.fromkeys(names))

    @property
    def blob_root(self) -> str:
        """The blob store's root: the directory, or the URL of the bucket or memory."""
        if self.blob_backend == Backend.FILE:
            return self.file_storage_path
        # S3 keeps its blobs under the "s3" location; the memory store under "file".
        location = Backend.S3 if self.blob_backend == Backend.S3 else Backend.FILE
        return self.blob_urls.get(location, f"{self.blob_backend}://")

    def location_of(self, blob_location: str, key: str) -> str:
        """The URL of one blob: the root of its location followed by its key."""
        root = self.blob_urls.get(blob_location, f"{blob_location}://")
        return root + key


class StorageSummary(msgspec.Struct, frozen=True, kw_only=True):
    total_evaluations: int
    # What the database and the blob store occupy (the cache only holds copies).
    total_storage_bytes: int
    # Backends that answered (any state but unavailable).
    active_backends: int


class StorageOverview(msgspec.Struct, frozen=True, kw_only=True):
    status: BackendState
    summary: StorageSummary
    backends: dict[str, BackendReport]


def _count(report: BackendReport | None, metric: str) -> int:
    value = None if report is None else report.metrics.get(metric)
    return int(value) if isinstance(value, int | float) else 0


def summarize(reports: dict[str, BackendReport]) -> StorageSummary:
    database, blobs = reports.get(Backend.DATABASE), reports.get(Backend.FILE)
    return StorageSummary(
        total_evaluations=_count(database, "evaluations"),
        total_storage_bytes=_count(database, "size_bytes") + _count(blobs, "total_size_bytes"),
        active_backends=sum(1 for report in reports.values() if report.status != "unavailable"),
    )


async def inspect_all(
    inspectors: list[BackendInspector],
    *,
    detailed: bool = False,
    detailed_names: frozenset[str] = frozenset(),
) -> dict[str, BackendReport]:
    """Measure every backend concurrently; one slow backend does not serialise the rest.

    ``detailed_names`` are inspected in detail even when ``detailed`` is false.
    """
    reports: dict[str, BackendReport] = {}

    async def run(inspector: BackendInspector) -> None:
        detail = detailed or inspector.name in detailed_names
        reports[inspector.name] = await inspector.inspect(detailed=detail)

    async with anyio.create_task_group() as group:
        for inspector in inspectors:
            group.start_soon(run, inspector)
    return {inspector.name: reports[inspector.name] for inspector in inspectors}


def overall_state(
    reports: dict[str, BackendReport], essential: str = Backend.DATABASE
) -> BackendState:
    """Unavailable when the essential backend is and no fallback takes its writes;
    degraded when any backend is not healthy (the failover journal included)."""
    fallback = reports.get(Backend.FALLBACK)
    if reports.get(essential) is not None and reports[essential].status == "unavailable":
        # The backends that keep the service writable when the database is down.
        usable = (Backend.FILE, Backend.FALLBACK)
        if fallback is None or any(
            name in reports and reports[name].status == "unavailable" for name in usable
        ):
            return "unavailable"
    if any(report.status != "healthy" for report in reports.values()):
        return "degraded"
    return "healthy"


@dataclass(frozen=True, slots=True)
class DescribeStorage:
    configuration: StorageConfiguration

    async def execute(self) -> StorageConfiguration:
        return self.configuration


@dataclass(frozen=True, slots=True)
class GetStorageOverview:
    inspectors: list[BackendInspector]
    audience: StorageAudience

    async def execute(self) -> StorageOverview:
        """Summary figures of every backend; the cache in detail (its key sample, TTLs and
        memory are bounded: a few thousand keys at most). As the caller's tenant may see
        them (``StorageAudience``)."""
        measured = await inspect_all(self.inspectors, detailed_names=frozenset({Backend.CACHE}))
        reports = await self.audience.all_shown(measured)
        return StorageOverview(
            status=overall_state(reports), summary=summarize(reports), backends=reports
        )


class GetBackendDetails:
    """One backend in detail, by its name here or an alias (``redis`` for the cache)."""

    def __init__(self, inspectors: list[BackendInspector], audience: StorageAudience) -> None:
        self._inspectors = {inspector.name: inspector for inspector in inspectors}
        self._audience = audience

    async def execute(self, backend: str) -> BackendReport:
        name = Backend.CACHE if backend in CACHE_ALIASES else backend
        inspector = self._inspectors.get(name)
        if inspector is None:
            known = {
                *self._inspectors,
                *(CACHE_ALIASES if Backend.CACHE in self._inspectors else ()),
            }
            raise UnknownBackendError(backend, sorted(known))
        return await self._audience.shown(await inspector.inspect(detailed=True))


def _inspector(inspectors: list[BackendInspector], name: str) -> BackendInspector:
    for inspector in inspectors:
        if inspector.name == name:
            return inspector
    raise UnknownBackendError(name, sorted(inspector.name for inspector in inspectors))


async def _reachable(inspector: BackendInspector) -> BackendReport:
    """Its detailed report; unavailable is an error, not a page of zeros."""
    report = await inspector.inspect(detailed=True)
    if report.status == "unavailable":
        raise BackendUnavailableError(Backend(report.name), report.error or "unreachable")
    return report


class DatabaseDetails(msgspec.Struct, frozen=True, kw_only=True):
    report: BackendReport
    by_status: dict[str, int]
    recent: list[Evaluation]


class GetDatabaseDetails:
    """The records backend in detail, with live records by status and the newest ones."""

    def __init__(
        self,
        inspectors: list[BackendInspector],
        queries: EvaluationQueries,
        audience: StorageAudience,
    ) -> None:
        self._inspector = _inspector(inspectors, Backend.DATABASE)
        self._queries = queries
        self._audience = audience

    async def execute(self) -> DatabaseDetails:
        report = await self._audience.shown(await _reachable(self._inspector))
        statistics = await self._queries.statistics()  # counters: constant time
        page = await self._queries.list(EvaluationQuery(limit=RECENT_EVALUATIONS))
        return DatabaseDetails(report=report, by_status=statistics.by_status, recent=page.items)


class FileDetails(msgspec.Struct, frozen=True, kw_only=True):
    report: BackendReport
    # The blob store's root: a directory, or an s3:// or memory:// URL.
    root: str
    largest: list[BlobEntry]
    total_files: int


class GetFileDetails:
    """The blob store in detail, with its largest files: from the inspector's own
    measurement when it keeps them (the file store), else one pass over the listing."""

    def __init__(
        self,
        inspectors: list[BackendInspector],
        blobs: BlobStore,
        configuration: StorageConfiguration,
        audience: StorageAudience,
    ) -> None:
        self._inspector = _inspector(inspectors, Backend.FILE)
        self._blobs = blobs
        self._configuration = configuration
        self._audience = audience

    async def execute(self) -> FileDetails:
        report = await _reachable(self._inspector)
        if not self._audience.sees_deployment:  # the store's files are the deployment's
            return FileDetails(
                report=await self._audience.shown(report),
                root=self._configuration.blob_root,
                largest=[],
                total_files=0,
            )
        if isinstance(self._inspector, LargestBlobs):  # from the walk the report came from
            found, total = await self._inspector.largest()
            return FileDetails(
                report=report,
                root=self._configuration.blob_root,
                largest=found[:LARGEST_FILES],
                total_files=total,
            )
        total = 0
        largest: list[tuple[int, int, BlobEntry]] = []  # a min-heap of the largest files
        async for entry in self._blobs.entries():
            total += 1
            item = (entry.size, -total, entry)
            if len(largest) < LARGEST_FILES:
                heapq.heappush(largest, item)
            else:
                heapq.heappushpop(largest, item)
        return FileDetails(
            report=report,
            root=self._configuration.blob_root,
            largest=[entry for _, _, entry in sorted(largest, reverse=True)],
            total_files=total,
        )


class HealthReport(msgspec.Struct, frozen=True, kw_only=True):
    status: BackendState
    backends: dict[str, Any]
    # Writes acknowledged into the failover journal and not yet in the primary.
    pending_replay: int = 0
    oldest_pending_age_s: float | None = None
    # Whether writes the fallback takes while the database is down survive a crash.
    fallback_durable: bool | None = None


# A probe that has not answered within this many seconds counts as unavailable.
HEALTH_TIMEOUT_S = 2.0


class InspectionProbe:
    """``HealthProbe`` for a backend without a cheap probe: its (summary) inspection."""

    def __init__(self, inspector: BackendInspector) -> None:
        self._inspector = inspector
        self.name = inspector.name

    async def probe(self) -> BackendReport:
        return await self._inspector.inspect()


def as_probe(inspector: BackendInspector) -> HealthProbe:
    """The inspector itself when it can probe cheaply, else its inspection."""
    return inspector if isinstance(inspector, HealthProbe) else InspectionProbe(inspector)


class CheckHealth:
    """Per-backend state from cheap probes (one round trip each, concurrently, bounded
    by ``timeout_s``); the service can serve unless the database is unavailable.

    The counts and sizes stay in ``GetStorageOverview``: a health check polled every
    few seconds must not grow with the data.
    """

    def __init__(self, probes: list[HealthProbe], timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        self._probes = probes
        self._timeout_s = timeout_s
        self._checks = SingleFlight(self._check)

    async def execute(self) -> HealthReport:
        """Checks that arrive while one runs share its answer.

        So a burst of checks (load balancers, dashboards, a load test) costs the
        backends one probe at a time per process instead of one per request: under 32
        concurrent checks the database probe used to open connections past its pool.
        """
        return await self._checks.run()

    async def _check(self) -> HealthReport:
        reports: dict[str, BackendReport] = {}

        async def run(probe: HealthProbe) -> None:
            with anyio.move_on_after(self._timeout_s):
                reports[probe.name] = await probe.probe()
                return
            reports[probe.name] = BackendReport(
                name=probe.name,
                type="unknown",
                status="unavailable",
                error=f"no answer within {self._timeout_s:g} s",
            )

        async with anyio.create_task_group() as group:
            for probe in self._probes:
                group.start_soon(run, probe)
        ordered = {probe.name: reports[probe.name] for probe in self._probes}
        backends = {
            name: {"status": report.status, "type": report.type, "error": report.error}
            for name, report in ordered.items()
        }
        fallback = ordered.get(Backend.FALLBACK)
        metrics = {} if fallback is None else fallback.metrics
        pending = metrics.get("pending_replay")
        age = metrics.get("oldest_pending_age_s")
        return HealthReport(
            status=overall_state(ordered),
            backends=backends,
            pending_replay=int(pending) if isinstance(pending, (int, float)) else 0,
            oldest_pending_age_s=float(age) if isinstance(age, (int, float)) else None,
            fallback_durable=next(
                (probe.durable for probe in self._probes if isinstance(probe, JournalInspector)),
                None,
            ),
        )
