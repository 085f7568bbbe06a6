import pytest

from application.errors import EvaluationNotFoundError, PreconditionFailedError
from application.queries import EvaluationQuery
from domain.identifiers import parse_evaluation_id
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from tests.use_cases.conftest import UseCases

pytestmark = pytest.mark.anyio


async def test_soft_delete_keeps_the_row_with_deleted_at(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    deleted_at = app.clock.advance(minutes=5)

    await app.delete.execute(seeded.id)

    stored = app.stored(seeded)
    assert stored.deleted_at == deleted_at
    assert stored.version == 2
    assert await app.repository.get(seeded.id) is None
    assert app.uow.committed


async def test_deleted_disappears_from_lists_and_statistics(app: UseCases) -> None:
    kept = await app.seed(status=EvaluationStatus.QUEUED)
    gone = await app.seed(status=EvaluationStatus.QUEUED)

    await app.delete.execute(gone.id)

    page = await app.list.execute(EvaluationQuery(include_total=True))
    assert [e.id for e in page.items] == [kept.id]
    assert page.total == 1
    assert (await app.statistics.execute()).totals.total == 1


async def test_second_delete_is_not_found(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    await app.delete.execute(seeded.id)

    with pytest.raises(EvaluationNotFoundError):
        await app.delete.execute(seeded.id)


async def test_unknown_is_not_found(app: UseCases) -> None:
    with pytest.raises(EvaluationNotFoundError):
        await app.delete.execute(parse_evaluation_id("missing"))


async def test_delete_leaves_the_running_set(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.rebuild_running.execute()
    assert await app.running.get(DEFAULT_TENANT, seeded.id) is not None

    await app.delete.execute(seeded.id)

    assert await app.running.get(DEFAULT_TENANT, seeded.id) is None
    assert await app.list_running.execute() == []


async def test_stale_expected_version_is_a_failed_precondition(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)

    with pytest.raises(PreconditionFailedError) as caught:
        await app.delete.execute(seeded.id, expected_version=7)

    assert (caught.value.expected, caught.value.actual) == (7, 1)
    assert app.stored(seeded).deleted_at is None


async def test_matching_expected_version_deletes(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)

    await app.delete.execute(seeded.id, expected_version=1)

    assert app.stored(seeded).deleted_at is not None
