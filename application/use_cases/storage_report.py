from typing import Any

import anyio
import msgspec

from application.errors import UnknownBackendError
from application.ports.backend_inspector import BackendInspector
from application.ports.health_probe import HealthProbe
from application.queries import BackendReport, BackendState
from application.services.journal_report import NAME as FALLBACK
from application.services.journal_report import JournalInspector
from application.services.single_flight import SingleFlight

# The names of the backends that keep the service writable when the database is down.
BLOBS = "file"


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


class StorageOverview(msgspec.Struct, frozen=True, kw_only=True):
    status: BackendState
    backends: dict[str, BackendReport]


async def inspect_all(
    inspectors: list[BackendInspector], *, detailed: bool = False
) -> dict[str, BackendReport]:
    """Measure every backend concurrently; one slow backend does not serialise the rest."""
    reports: dict[str, BackendReport] = {}

    async def run(inspector: BackendInspector) -> None:
        reports[inspector.name] = await inspector.inspect(detailed=detailed)

    async with anyio.create_task_group() as group:
        for inspector in inspectors:
            group.start_soon(run, inspector)
    return {inspector.name: reports[inspector.name] for inspector in inspectors}


def overall_state(reports: dict[str, BackendReport], essential: str = "database") -> BackendState:
    """Unavailable when the essential backend is and no fallback takes its writes;
    degraded when any backend is not healthy (the failover journal included)."""
    fallback = reports.get(FALLBACK)
    if reports.get(essential) is not None and reports[essential].status == "unavailable":
        usable = (BLOBS, FALLBACK)
        if fallback is None or any(
            name in reports and reports[name].status == "unavailable" for name in usable
        ):
            return "unavailable"
    if any(report.status != "healthy" for report in reports.values()):
        return "degraded"
    return "healthy"


class DescribeStorage:
    def __init__(self, configuration: StorageConfiguration) -> None:
        self._configuration = configuration

    async def execute(self) -> StorageConfiguration:
        return self._configuration


class GetStorageOverview:
    def __init__(self, inspectors: list[BackendInspector]) -> None:
        self._inspectors = inspectors

    async def execute(self) -> StorageOverview:
        reports = await inspect_all(self._inspectors)
        return StorageOverview(status=overall_state(reports), backends=reports)


class GetBackendDetails:
    def __init__(self, inspectors: list[BackendInspector]) -> None:
        self._inspectors = {inspector.name: inspector for inspector in inspectors}

    async def execute(self, backend: str) -> BackendReport:
        inspector = self._inspectors.get(backend)
        if inspector is None:
            raise UnknownBackendError(backend, sorted(self._inspectors))
        return await inspector.inspect(detailed=True)


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
        fallback = ordered.get(FALLBACK)
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
