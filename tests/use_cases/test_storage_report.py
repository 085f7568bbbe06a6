import anyio
import msgspec
import pytest

from application.commands import EvaluationChanges
from application.errors import BackendUnavailableError, UnknownBackendError
from application.ports.backend_inspector import BackendInspector
from application.queries import BackendReport
from application.services.storage_audience import StorageAudience
from application.use_cases.storage_report import (
    LARGEST_FILES,
    RECENT_EVALUATIONS,
    CheckHealth,
    DescribeStorage,
    GetBackendDetails,
    GetDatabaseDetails,
    GetFileDetails,
    GetStorageOverview,
    StorageSummary,
    as_probe,
    overall_state,
)
from domain.status import EvaluationStatus
from domain.tenancy import TenantId
from tests.use_cases.conftest import THRESHOLDS, StubInspector, UseCases, memory_configuration

pytestmark = pytest.mark.anyio


async def test_describe_returns_the_configuration(app: UseCases) -> None:
    assert await DescribeStorage(app.configuration).execute() is app.configuration


def test_backends_available_name_each_kind_of_storage_once() -> None:
    memory = memory_configuration()
    tiered = msgspec.structs.replace(
        memory,
        primary_backend="database",
        fallback_backend="file",
        blob_backend="file",
        cache_backend="redis",
        blob_urls={"file": "file:///data/files/", "s3": "s3://bucket/p/"},
    )

    assert memory.backends_available == ["memory"]
    assert tiered.backends_available == ["database", "file", "s3", "redis"]
    assert tiered.location_of("s3", "evaluations/e/output.t.txt.zst") == (
        "s3://bucket/p/evaluations/e/output.t.txt.zst"
    )
    assert tiered.blob_root == "/tmp/files"
    assert memory.blob_root == "memory://"


async def test_overview_measures_every_memory_backend(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(
        seeded.id, EvaluationChanges(output="x" * (THRESHOLDS.large_file_threshold + 1))
    )
    await app.get.execute(seeded.id)

    overview = await GetStorageOverview(app.inspectors, app.audience).execute()

    assert overview.status == "healthy"
    assert list(overview.backends) == ["database", "file", "cache"]
    database, files, cache = overview.backends.values()
    assert database.metrics["evaluations"] == 1
    assert database.metrics["oldest_record"] == seeded.created_at.isoformat()
    assert files.metrics["files"] == 2  # output blob + metadata.json
    assert files.metrics["evaluations"] == 1
    assert files.metrics["directories"] == 2  # evaluations/, evaluations/<id>/
    assert str(files.metrics["largest_file"]).startswith(f"evaluations/{seeded.id}/")
    assert cache.metrics["hits"] == 1
    # The cache alone is inspected in detail: its key sample and TTLs are bounded.
    assert cache.details["keys_eval"] == 1
    assert cache.listings["keys"] == [f"eval:{{{seeded.id}}}"]
    assert database.details == {} and files.details == {}
    assert overview.summary == StorageSummary(
        total_evaluations=1,
        total_storage_bytes=int(files.metrics["total_size_bytes"] or 0),  # no size in memory
        active_backends=3,
    )


async def test_overview_is_degraded_when_a_secondary_backend_is_down(app: UseCases) -> None:
    inspectors = [*app.inspectors[:2], StubInspector("cache", "unavailable", "refused")]

    overview = await GetStorageOverview(inspectors, app.audience).execute()

    assert overview.status == "degraded"
    assert overview.backends["cache"].error == "refused"
    assert overview.summary.active_backends == 2


async def test_health_is_unavailable_when_the_database_is(app: UseCases) -> None:
    probes = [
        StubInspector("database", "unavailable", "connection refused"),
        *[as_probe(inspector) for inspector in app.inspectors[1:]],
    ]

    health = await CheckHealth(probes).execute()

    assert health.status == "unavailable"
    assert health.backends["database"] == {
        "status": "unavailable",
        "type": "stub",
        "error": "connection refused",
    }
    assert health.backends["file"]["status"] == "healthy"


async def test_health_of_memory_backends_is_healthy(app: UseCases) -> None:
    health = await CheckHealth([as_probe(i) for i in app.inspectors]).execute()

    assert health.status == "healthy"
    assert {name: b["type"] for name, b in health.backends.items()} == {
        "database": "memory",
        "file": "memory",
        "cache": "memory",
    }


async def test_health_probes_and_never_inspects(app: UseCases) -> None:
    stubs = [StubInspector(name, "healthy") for name in ("database", "file", "cache")]

    health = await CheckHealth([as_probe(stub) for stub in stubs]).execute()

    assert health.status == "healthy"
    assert [stub.probe_calls for stub in stubs] == [1, 1, 1]
    assert [stub.detailed_calls for stub in stubs] == [[], [], []]


async def test_a_probe_that_does_not_answer_in_time_is_unavailable(app: UseCases) -> None:
    slow = StubInspector("cache", "healthy")
    slow.hang = True
    probes = [*[as_probe(i) for i in app.inspectors[:2]], slow]

    health = await CheckHealth(probes, timeout_s=0.01).execute()

    assert health.status == "degraded"
    assert health.backends["cache"]["status"] == "unavailable"
    assert "no answer within" in health.backends["cache"]["error"]
    assert health.backends["database"]["status"] == "healthy"


async def test_a_backend_without_a_probe_is_inspected(app: UseCases) -> None:
    class InspectOnly:
        name = "file"

        def __init__(self) -> None:
            self.calls: list[bool] = []

        async def inspect(self, *, detailed: bool = False) -> BackendReport:
            self.calls.append(detailed)
            return BackendReport(name=self.name, type="s3", status="healthy")

    inspector = InspectOnly()

    health = await CheckHealth([as_probe(inspector)]).execute()

    assert health.backends["file"]["type"] == "s3"
    assert inspector.calls == [False]


async def test_details_are_detailed(app: UseCases) -> None:
    stub = StubInspector("file", "healthy")
    details = GetBackendDetails([app.inspectors[0], stub, app.inspectors[2]], app.audience)

    database = await details.execute("database")
    await details.execute("file")

    assert database.details["durable"] == "no"
    assert stub.detailed_calls == [True]


async def test_details_of_an_unknown_backend_name_the_known_ones(app: UseCases) -> None:
    with pytest.raises(UnknownBackendError) as caught:
        await GetBackendDetails(app.inspectors, app.audience).execute("s3")

    assert caught.value.backend == "s3"
    assert caught.value.known == ["cache", "database", "file", "redis"]


async def test_redis_is_the_cache_whatever_it_runs_on(app: UseCases) -> None:
    report = await GetBackendDetails(app.inspectors, app.audience).execute("redis")

    assert (report.name, report.type) == ("cache", "memory")
    assert "ttl_sampled_keys" in report.details


async def test_database_details_count_by_status_and_list_the_newest(app: UseCases) -> None:
    old = await app.seed(status=EvaluationStatus.COMPLETED, created_at=app.clock.now())
    for _ in range(RECENT_EVALUATIONS):
        app.clock.advance(seconds=1)
        await app.seed(status=EvaluationStatus.QUEUED, created_at=app.clock.now())

    found = await GetDatabaseDetails(app.inspectors, app.queries, app.audience).execute()

    assert found.by_status == {"completed": 1, "queued": RECENT_EVALUATIONS}
    assert len(found.recent) == RECENT_EVALUATIONS
    assert old.id not in {e.id for e in found.recent}
    assert "status" in found.report.listings["evaluations_columns"]
    assert "event_type" in found.report.listings["evaluation_events_columns"]


async def test_unreachable_backends_are_an_error_not_zeros(app: UseCases) -> None:
    down: list[BackendInspector] = [
        StubInspector("database", "unavailable", "refused"),
        StubInspector("file", "unavailable"),
    ]

    with pytest.raises(BackendUnavailableError, match="refused"):
        await GetDatabaseDetails(down, app.queries, app.audience).execute()
    with pytest.raises(BackendUnavailableError):
        await GetFileDetails(down, app.blobs, app.configuration, app.audience).execute()


async def test_file_details_list_the_largest_files_first(app: UseCases) -> None:
    sizes = [5, 80, 17, 80, 3]
    for index, size in enumerate(sizes):
        await app.blobs.put(f"evaluations/e{index}/output.t.txt", b"x" * size)

    found = await GetFileDetails(
        app.inspectors, app.blobs, app.configuration, app.audience
    ).execute()

    assert found.total_files == len(sizes)
    assert [(entry.key, entry.size) for entry in found.largest] == [
        ("evaluations/e1/output.t.txt", 80),
        ("evaluations/e3/output.t.txt", 80),
        ("evaluations/e2/output.t.txt", 17),
        ("evaluations/e0/output.t.txt", 5),
        ("evaluations/e4/output.t.txt", 3),
    ]
    assert found.root == "memory://"


async def test_file_details_keep_only_the_largest(app: UseCases) -> None:
    for index in range(LARGEST_FILES + 5):
        await app.blobs.put(f"evaluations/e/output.{index:03}.txt", b"x" * (index + 1))

    found = await GetFileDetails(
        app.inspectors, app.blobs, app.configuration, app.audience
    ).execute()

    assert found.total_files == LARGEST_FILES + 5
    assert [entry.size for entry in found.largest] == list(range(LARGEST_FILES + 5, 5, -1))


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({"database": "healthy", "cache": "healthy"}, "healthy"),
        ({"database": "healthy", "cache": "degraded"}, "degraded"),
        ({"database": "degraded", "cache": "healthy"}, "degraded"),
        ({"database": "unavailable", "cache": "healthy"}, "unavailable"),
    ],
)
def test_overall_state(states: dict[str, str], expected: str) -> None:
    reports = {
        name: BackendReport(name=name, type="stub", status=state)  # type: ignore[arg-type]
        for name, state in states.items()
    }

    assert overall_state(reports) == expected


async def test_checks_arriving_while_one_runs_share_its_probes(app: UseCases) -> None:
    gate = anyio.Event()

    class Gated(StubInspector):
        async def probe(self) -> BackendReport:
            await gate.wait()
            return await super().probe()

    database = Gated("database", "healthy")
    check = CheckHealth([as_probe(database)])
    answers: list[str] = []

    async def ask() -> None:
        answers.append((await check.execute()).status)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert answers == ["healthy"] * 20
    assert database.probe_calls == 1
    # The next check probes again: nothing is kept once the shared one has answered.
    await check.execute()
    assert database.probe_calls == 2


async def test_another_tenant_sees_its_own_counts_and_none_of_the_deployments_figures(
    app: UseCases,
) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(
        seeded.id, EvaluationChanges(output="x" * (THRESHOLDS.large_file_threshold + 1))
    )
    acme = StorageAudience(tenant=TenantId("acme"), queries=app.queries)

    whole = await GetStorageOverview(app.inspectors, app.audience).execute()
    overview = await GetStorageOverview(app.inspectors, acme).execute()
    files = await GetFileDetails(app.inspectors, app.blobs, app.configuration, acme).execute()

    assert whole.summary.total_evaluations == 1 and whole.summary.total_storage_bytes > 0
    assert {name: report.status for name, report in overview.backends.items()} == {
        name: report.status for name, report in whole.backends.items()
    }
    # The counts are the request's queries' (its tenant's counters); sizes are left out.
    counted = {"evaluations": 1, "events": 0, "log_bytes": 0}
    assert overview.backends["database"].metrics == counted
    assert all(
        (report.metrics, report.details, report.listings, report.classes) == ({}, {}, {}, {})
        for name, report in overview.backends.items()
        if name != "database"
    )
    assert (overview.summary.total_evaluations, overview.summary.total_storage_bytes) == (1, 0)
    assert (files.largest, files.total_files, files.report.metrics) == ([], 0, {})
