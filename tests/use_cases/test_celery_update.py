import msgspec
import pytest

from application.commands import CeleryUpdate, EvaluationChanges
from application.errors import EvaluationNotFoundError, InvalidRequestError
from domain.identifiers import parse_evaluation_id
from domain.payload import PayloadLocation
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from tests.factories import CeleryUpdateBodyFactory
from tests.use_cases.conftest import THRESHOLDS, UseCases

pytestmark = pytest.mark.anyio


def _update(**fields: object) -> CeleryUpdate:
    """A Celery update as the HTTP edge builds it from the request body."""
    body = CeleryUpdateBodyFactory.build(**fields)
    return CeleryUpdate(**msgspec.structs.asdict(body))


@pytest.mark.parametrize(
    ("state", "start", "expected"),
    [
        ("PENDING", EvaluationStatus.SUBMITTED, EvaluationStatus.QUEUED),
        ("RECEIVED", EvaluationStatus.SUBMITTED, EvaluationStatus.QUEUED),
        ("STARTED", EvaluationStatus.QUEUED, EvaluationStatus.RUNNING),
        ("RETRY", EvaluationStatus.RUNNING, EvaluationStatus.QUEUED),
        ("SUCCESS", EvaluationStatus.RUNNING, EvaluationStatus.COMPLETED),
        ("FAILURE", EvaluationStatus.RUNNING, EvaluationStatus.FAILED),
        ("REVOKED", EvaluationStatus.QUEUED, EvaluationStatus.CANCELLED),
    ],
)
async def test_each_state_maps_onto_its_status(
    app: UseCases, state: str, start: EvaluationStatus, expected: EvaluationStatus
) -> None:
    seeded = await app.seed(status=start)

    outcome = await app.celery.execute(seeded.id, _update(task_state=state))

    assert outcome.applied
    assert outcome.reason is None
    assert outcome.evaluation.status is expected
    assert app.stored(seeded).status is expected
    assert outcome.evaluation.version == 2


async def test_state_is_case_insensitive(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    outcome = await app.celery.execute(seeded.id, _update(task_state="success"))

    assert outcome.evaluation.status is EvaluationStatus.COMPLETED


async def test_task_id_is_recorded_and_kept_when_absent(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)

    await app.celery.execute(
        seeded.id, _update(task_state="STARTED", celery_task_id="celery-task-456")
    )
    outcome = await app.celery.execute(
        seeded.id, _update(task_state="SUCCESS", celery_task_id=None)
    )

    assert outcome.evaluation.celery_task_id == "celery-task-456"


async def test_retry_is_counted(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    outcome = await app.celery.execute(seeded.id, _update(task_state="RETRY"))

    assert outcome.evaluation.retries == 1
    assert outcome.evaluation.status is EvaluationStatus.QUEUED


async def test_retries_given_by_celery_win(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    outcome = await app.celery.execute(seeded.id, _update(task_state="RETRY", retries=5))

    assert outcome.evaluation.retries == 5


async def test_each_retry_cycle_counts_once(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    for _ in range(2):
        await app.celery.execute(seeded.id, _update(task_state="RETRY"))
        await app.celery.execute(seeded.id, _update(task_state="STARTED"))

    assert app.stored(seeded).retries == 2


async def test_redelivered_retry_is_not_counted_twice(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    update = _update(task_state="RETRY", celery_task_id="task-1")

    await app.celery.execute(seeded.id, update)
    duplicate = await app.celery.execute(seeded.id, update)

    assert not duplicate.applied
    assert app.stored(seeded).retries == 1


async def test_duplicate_success_is_acknowledged_but_changes_nothing(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    update = _update(task_state="SUCCESS", celery_task_id="task-1", output="42\n")
    first = await app.celery.execute(seeded.id, update)
    app.clock.advance(seconds=30)

    duplicate = await app.celery.execute(seeded.id, update)

    assert first.applied
    assert not duplicate.applied
    assert duplicate.evaluation == first.evaluation
    assert app.stored(seeded).version == 2


@pytest.mark.parametrize(
    ("finished", "late_state"),
    [
        (EvaluationStatus.COMPLETED, "STARTED"),
        (EvaluationStatus.COMPLETED, "PENDING"),
        (EvaluationStatus.FAILED, "RETRY"),
        (EvaluationStatus.CANCELLED, "SUCCESS"),
        (EvaluationStatus.COMPLETED, "FAILURE"),
    ],
)
async def test_late_update_never_moves_a_finished_evaluation(
    app: UseCases, finished: EvaluationStatus, late_state: str
) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(seeded.id, EvaluationChanges(status=finished))

    outcome = await app.celery.execute(seeded.id, _update(task_state=late_state, output="late"))

    assert not outcome.applied
    assert outcome.reason is not None
    assert f"'{finished.value}'" in outcome.reason
    assert outcome.evaluation.status is finished
    stored = app.stored(seeded)
    assert stored.status is finished
    assert stored.output is None
    assert stored.version == 2
    assert await app.running.get(DEFAULT_TENANT, seeded.id) is None


async def test_unknown_state_is_an_invalid_request(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    with pytest.raises(InvalidRequestError) as caught:
        await app.celery.execute(seeded.id, _update(task_state="EXPLODED"))

    assert caught.value.field == "task_state"
    assert "SUCCESS" in caught.value.message
    assert app.stored(seeded).version == 1


async def test_unknown_evaluation_is_not_found(app: UseCases) -> None:
    with pytest.raises(EvaluationNotFoundError):
        await app.celery.execute(parse_evaluation_id("missing"), _update(task_state="STARTED"))


async def test_success_with_large_output_routes_it_to_the_blob_store(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    output = "o" * (THRESHOLDS.large_file_threshold + 10)

    outcome = await app.celery.execute(
        seeded.id, _update(task_state="SUCCESS", output=output, error=None)
    )

    stored_output = outcome.evaluation.output
    assert stored_output is not None and stored_output.key is not None
    assert stored_output.location is PayloadLocation.FILE
    assert (await app.blobs.get(stored_output.key)).decode() == output
    assert outcome.evaluation.completed_at == app.clock.now()


async def test_started_tracks_and_success_untracks(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)

    await app.celery.execute(seeded.id, _update(task_state="STARTED"))
    assert [i.evaluation_id for i in await app.list_running.execute()] == [seeded.id]
    await app.celery.execute(seeded.id, _update(task_state="SUCCESS"))

    assert await app.list_running.execute() == []


@pytest.mark.parametrize("state", ["PENDING", "RECEIVED"])
@pytest.mark.parametrize("start", [EvaluationStatus.PROVISIONING, EvaluationStatus.RUNNING])
async def test_a_late_task_start_state_never_sends_an_active_evaluation_back(
    app: UseCases, state: str, start: EvaluationStatus
) -> None:
    seeded = await app.seed(status=start, executor_id="exec-1", container_id="c-1")

    outcome = await app.celery.execute(seeded.id, _update(task_state=state))

    assert not outcome.applied
    assert outcome.reason is not None
    assert "after the task started" in outcome.reason
    stored = app.stored(seeded)
    assert stored.status is start
    assert (stored.executor_id, stored.container_id) == ("exec-1", "c-1")
