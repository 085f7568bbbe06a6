import anyio
import pytest

from application.errors import UnknownBackendError
from application.queries import BackendReport
from application.use_cases.storage_report import (
    CheckHealth,
    DescribeStorage,
    GetBackendDetails,
    GetStorageOverview,
    StorageConfiguration,
    as_probe,
    overall_state,
)
from application.use_cases.update_evaluation import EvaluationChanges
from domain.status import EvaluationStatus
from tests.use_cases.conftest import THRESHOLDS, StubInspector, UseCases

pytestmark = pytest.mark.anyio


async def test_describe_returns_the_configuration(app: UseCases) -> None:
    configuration = StorageConfiguration(
        primary_backend="memory",
        fallback_backend="none",
        database="memory",
        cache="memory",
        caching_enabled=True,
        file_storage_path="/tmp/files",
        large_file_threshold=THRESHOLDS.large_file_threshold,
        compression_threshold=THRESHOLDS.compression_threshold,
        preview_size=THRESHOLDS.preview_size,
        cache_ttl=3600,
        max_request_bytes=1024,
    )

    assert await DescribeStorage(configuration).execute() is configuration


async def test_overview_measures_every_memory_backend(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(
        seeded.id, EvaluationChanges(output="x" * (THRESHOLDS.large_file_threshold + 1))
    )
    await app.get.execute(seeded.id)

    overview = await GetStorageOverview(app.inspectors).execute()

    assert overview.status == "healthy"
    assert list(overview.backends) == ["database", "file", "cache"]
    assert overview.backends["database"].metrics["evaluations"] == 1
    assert overview.backends["file"].metrics["files"] == 2  # output blob + metadata.json
    assert overview.backends["file"].metrics["evaluations"] == 1
    assert overview.backends["cache"].metrics["hits"] == 1


async def test_overview_is_degraded_when_a_secondary_backend_is_down(app: UseCases) -> None:
    inspectors = [*app.inspectors[:2], StubInspector("cache", "unavailable", "refused")]

    overview = await GetStorageOverview(inspectors).execute()

    assert overview.status == "degraded"
    assert overview.backends["cache"].error == "refused"


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
    details = GetBackendDetails([app.inspectors[0], stub, app.inspectors[2]])

    database = await details.execute("database")
    await details.execute("file")

    assert database.details["durable"] == "no"
    assert stub.detailed_calls == [True]


async def test_details_of_an_unknown_backend_name_the_known_ones(app: UseCases) -> None:
    with pytest.raises(UnknownBackendError) as caught:
        await GetBackendDetails(app.inspectors).execute("s3")

    assert caught.value.backend == "s3"
    assert caught.value.known == ["cache", "database", "file"]


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
