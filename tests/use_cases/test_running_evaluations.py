import builtins

import pytest

from application.commands import EvaluationChanges
from application.errors import EvaluationNotFoundError
from application.queries import RunningInfo
from application.use_cases.running_evaluations import ListRunningEvaluations, RebuildRunningRegistry
from domain.evaluation import Evaluation
from domain.identifiers import parse_evaluation_id
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.memory.evaluations import MemoryEvaluationQueries
from infrastructure.memory.running_registry import MemoryRunningRegistry
from tests.use_cases.conftest import UseCases

pytestmark = pytest.mark.anyio


class BlindRegistry(MemoryRunningRegistry):
    """A registry that cannot answer (like Redis during an outage)."""

    async def list(self, tenant: TenantId) -> builtins.list[RunningInfo] | None:
        return None


@pytest.mark.parametrize("status", [EvaluationStatus.PROVISIONING, EvaluationStatus.RUNNING])
async def test_entering_an_active_status_tracks_it(app: UseCases, status: EvaluationStatus) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)

    await app.update.execute(
        seeded.id, EvaluationChanges(status=status, executor_id="ex-1", container_id="c-1")
    )

    running = await app.list_running.execute()
    assert [(i.evaluation_id, i.status, i.executor_id, i.container_id) for i in running] == [
        (seeded.id, status, "ex-1", "c-1")
    ]
    info = await app.get_running.execute(seeded.id)
    assert info.status is status


@pytest.mark.parametrize(
    "status", [EvaluationStatus.COMPLETED, EvaluationStatus.FAILED, EvaluationStatus.CANCELLED]
)
async def test_terminal_status_leaves_the_set(app: UseCases, status: EvaluationStatus) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING))
    assert await app.running.get(DEFAULT_TENANT, seeded.id) is not None

    await app.update.execute(seeded.id, EvaluationChanges(status=status))

    assert await app.list_running.execute() == []
    with pytest.raises(EvaluationNotFoundError):
        await app.get_running.execute(seeded.id)


async def test_retry_back_to_queued_leaves_the_set(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING))

    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.QUEUED))

    assert await app.running.get(DEFAULT_TENANT, seeded.id) is None


async def test_delete_leaves_the_set(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING))

    await app.delete.execute(seeded.id)

    assert await app.list_running.execute() == []


async def test_list_is_sorted_by_id(app: UseCases) -> None:
    for name in ("run-c", "run-a", "run-b"):
        seeded = await app.seed(id=parse_evaluation_id(name), status=EvaluationStatus.QUEUED)
        await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING))

    assert [i.evaluation_id for i in await app.list_running.execute()] == [
        "run-a",
        "run-b",
        "run-c",
    ]


async def test_get_of_a_live_but_inactive_evaluation_is_not_found(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)

    with pytest.raises(EvaluationNotFoundError):
        await app.get_running.execute(seeded.id)


async def test_get_ignores_a_stale_registry_entry(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.COMPLETED)
    await app.running.track(
        DEFAULT_TENANT, RunningInfo(evaluation_id=seeded.id, status=EvaluationStatus.RUNNING)
    )

    with pytest.raises(EvaluationNotFoundError):
        await app.get_running.execute(seeded.id)


async def test_rebuild_makes_the_registry_agree_with_the_database(app: UseCases) -> None:
    active = [
        await app.seed(id=parse_evaluation_id("db-run"), status=EvaluationStatus.RUNNING),
        await app.seed(id=parse_evaluation_id("db-prov"), status=EvaluationStatus.PROVISIONING),
    ]
    await app.seed(status=EvaluationStatus.COMPLETED)
    await app.running.track(
        DEFAULT_TENANT,
        RunningInfo(evaluation_id=parse_evaluation_id("ghost"), status=EvaluationStatus.RUNNING),
    )

    count = await app.rebuild_running.execute()

    assert count == 2
    listed = await app.list_running.execute()
    assert [i.evaluation_id for i in listed] == ["db-prov", "db-run"]
    by_id = {i.evaluation_id: i for i in listed}
    for evaluation in active:
        assert by_id[evaluation.id].container_id == evaluation.container_id


async def test_list_falls_back_to_the_database_when_the_registry_cannot_answer(
    app: UseCases,
) -> None:
    running = await app.seed(id=parse_evaluation_id("fb-1"), status=EvaluationStatus.RUNNING)
    await app.seed(status=EvaluationStatus.QUEUED)
    use_case = ListRunningEvaluations(BlindRegistry(), app.queries, DEFAULT_TENANT)

    listed = await use_case.execute()

    assert [(i.evaluation_id, i.executor_id) for i in listed] == [(running.id, running.executor_id)]


async def test_an_untrusted_registry_is_answered_from_the_database_and_rebuilt(
    app: UseCases,
) -> None:
    running = await app.seed(id=parse_evaluation_id("db-1"), status=EvaluationStatus.RUNNING)
    finished = await app.seed(status=EvaluationStatus.COMPLETED)
    # The registry missed both changes (a write lost with Redis, say) and says so.
    await app.running.track(
        DEFAULT_TENANT, RunningInfo(evaluation_id=finished.id, status=EvaluationStatus.RUNNING)
    )
    app.running.distrust(DEFAULT_TENANT)

    listed = await app.list_running.execute()

    assert [i.evaluation_id for i in listed] == [running.id]
    assert await app.running.list(DEFAULT_TENANT) == [
        RunningInfo.of(running)
    ]  # rebuilt and trusted again


async def test_a_rebuild_raced_by_a_change_is_redone_by_the_next_list(app: UseCases) -> None:
    seeded = await app.seed(id=parse_evaluation_id("race-1"), status=EvaluationStatus.QUEUED)

    class RacedQueries(MemoryEvaluationQueries):
        """The database is read, then a change commits and is tracked before the rebuild ends."""

        async def list_active(self) -> builtins.list[Evaluation]:
            active = await super().list_active()
            await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING))
            return active

    assert (
        await RebuildRunningRegistry(
            app.running, RacedQueries(app.database, DEFAULT_TENANT), DEFAULT_TENANT
        ).execute()
        == 0
    )
    assert await app.running.list(DEFAULT_TENANT) is None

    listed = await app.list_running.execute()

    assert [(i.evaluation_id, i.status) for i in listed] == [(seeded.id, EvaluationStatus.RUNNING)]
    assert await app.running.list(DEFAULT_TENANT) == listed


async def test_get_fills_what_the_record_lacks_from_the_registry(app: UseCases) -> None:
    """The platform's worker writes the job name only into the registry's entry."""
    seeded = await app.seed(
        status=EvaluationStatus.QUEUED, executor_id=None, container_id=None, timeout=None
    )
    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING))
    await app.running.track(
        DEFAULT_TENANT,
        RunningInfo(
            evaluation_id=seeded.id,
            status=EvaluationStatus.RUNNING,
            executor_id="job-w",
            container_id="pod-w",
            timeout=300,
        ),
    )
    await app.update.execute(seeded.id, EvaluationChanges(container_id="c-db"))

    info = await app.get_running.execute(seeded.id)

    # The record's own value wins; the entry fills the gaps and is not erased by a later write.
    assert (info.executor_id, info.container_id, info.timeout) == ("job-w", "c-db", 300)
    assert info.started_at == app.stored(seeded).started_at
    listed = await app.list_running.execute()
    assert [(i.executor_id, i.container_id) for i in listed] == [("job-w", "c-db")]


async def test_the_running_info_carries_the_timeout(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)

    await app.update.execute(
        seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING, timeout=120)
    )

    assert (await app.get_running.execute(seeded.id)).timeout == 120
    assert [i.timeout for i in await app.list_running.execute()] == [120]
