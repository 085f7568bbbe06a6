import re
from datetime import timedelta

import msgspec
import pytest
from _pytest.mark import ParameterSet
from msgspec import UNSET

from application.commands import EvaluationChanges
from application.errors import EvaluationNotFoundError, PreconditionFailedError
from application.ports.audit_log import AuditQuery
from application.services.payloads import snapshot_key
from domain.audit import AuditAction
from domain.errors import InvalidTextError
from domain.identifiers import parse_evaluation_id
from domain.payload import PayloadLocation
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from tests.use_cases.conftest import THRESHOLDS, UseCases

pytestmark = pytest.mark.anyio

SMALL = "done\n"
LARGE = "x" * (THRESHOLDS.large_file_threshold + 1)  # one byte too many: to a blob
AT_LIMIT = "z" * THRESHOLDS.large_file_threshold  # still inline


async def test_legal_move_bumps_version_and_update_time(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    later = app.clock.advance(seconds=3)

    updated = await app.update.execute(
        seeded.id, EvaluationChanges(status=EvaluationStatus.PROVISIONING)
    )

    assert updated.status is EvaluationStatus.PROVISIONING
    assert updated.version == 2
    assert updated.updated_at == later
    assert app.stored(seeded).status is EvaluationStatus.PROVISIONING
    assert app.uow.committed


def transitions(*moves: str) -> list[ParameterSet]:
    """``"current->requested"`` status pairs, each with its move as the test id."""
    pairs = (move.split("->") for move in moves)
    return [
        pytest.param(EvaluationStatus(a), EvaluationStatus(b), id=f"{a}->{b}") for a, b in pairs
    ]


LATE_REPORTS = transitions(
    "completed->running",
    "failed->queued",
    "cancelled->completed",
    "queued->submitted",
    "running->submitted",
)
APPLIED_MOVES = transitions(
    "submitted->provisioning",
    "submitted->running",
    "queued->completed",
    "running->provisioning",
)


@pytest.mark.parametrize(("current", "requested"), LATE_REPORTS)
async def test_a_late_report_is_acknowledged_and_changes_nothing(
    app: UseCases, current: EvaluationStatus, requested: EvaluationStatus
) -> None:
    seeded = await app.seed(status=current)

    answered = await app.update.execute(
        seeded.id, EvaluationChanges(status=requested, output=LARGE, metadata={"a": 1})
    )

    stored = app.stored(seeded)
    assert answered.status is stored.status is current
    assert stored.version == 1
    assert stored.output is None
    assert stored.metadata == seeded.metadata
    assert app.blobs.stored() == {}


@pytest.mark.parametrize(("current", "requested"), APPLIED_MOVES)
async def test_a_skipped_step_or_a_listed_retry_is_applied(
    app: UseCases, current: EvaluationStatus, requested: EvaluationStatus
) -> None:
    seeded = await app.seed(status=current)
    answered = await app.update.execute(seeded.id, EvaluationChanges(status=requested))
    assert answered.status is app.stored(seeded).status is requested


async def test_an_admin_override_moves_a_finished_evaluation_and_is_audited(
    app: UseCases,
) -> None:
    seeded = await app.seed(status=EvaluationStatus.COMPLETED)

    changes = EvaluationChanges(status=EvaluationStatus.FAILED, override=True)
    answered = await app.update.execute(seeded.id, changes)

    assert answered.status is app.stored(seeded).status is EvaluationStatus.FAILED
    entries = await app.audit_log.list(AuditQuery())
    assert entries[0].action is AuditAction.ADMIN_OVERRIDE
    assert "status" in entries[0].fields


async def test_running_then_completed_fills_timestamps_and_runtime(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    started = app.clock.advance(seconds=1)
    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING))
    completed = app.clock.advance(milliseconds=2500)

    updated = await app.update.execute(
        seeded.id, EvaluationChanges(status=EvaluationStatus.COMPLETED)
    )

    assert updated.started_at == started
    assert updated.completed_at == completed
    assert updated.runtime_ms == 2500
    assert updated.version == 3


async def test_given_runtime_and_completed_at_are_kept(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    assert seeded.started_at is not None
    given_end = seeded.started_at + timedelta(seconds=9)

    updated = await app.update.execute(
        seeded.id,
        EvaluationChanges(status=EvaluationStatus.FAILED, runtime_ms=150, completed_at=given_end),
    )

    assert updated.runtime_ms == 150
    assert updated.completed_at == given_end


async def test_metadata_is_merged_later_keys_win(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED, metadata={"a": 1, "b": 2})

    updated = await app.update.execute(seeded.id, EvaluationChanges(metadata={"b": 3, "c": 4}))

    assert updated.metadata == {"a": 1, "b": 3, "c": 4}
    assert app.stored(seeded).metadata == {"a": 1, "b": 3, "c": 4}


async def test_no_op_update_keeps_the_version(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED, metadata={"a": 1})

    updated = await app.update.execute(
        seeded.id, EvaluationChanges(status=EvaluationStatus.QUEUED, metadata={"a": 1})
    )

    assert updated.version == 1
    assert not app.uow.committed


async def test_back_to_queued_drops_container_info(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    assert seeded.container_id is not None

    updated = await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.QUEUED))

    assert (updated.executor_id, updated.container_id) == (None, None)


async def test_stale_expected_version_is_a_failed_precondition(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    await app.update.execute(seeded.id, EvaluationChanges(metadata={"first": True}))

    with pytest.raises(PreconditionFailedError) as caught:
        await app.update.execute(
            seeded.id, EvaluationChanges(metadata={"second": True}), expected_version=1
        )

    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert "second" not in app.stored(seeded).metadata


async def test_current_expected_version_applies(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)

    updated = await app.update.execute(
        seeded.id, EvaluationChanges(executor_id="executor-9"), expected_version=1
    )

    assert updated.executor_id == "executor-9"
    assert updated.version == 2


async def test_unknown_is_not_found(app: UseCases) -> None:
    with pytest.raises(EvaluationNotFoundError):
        await app.update.execute(parse_evaluation_id("missing"), EvaluationChanges(retries=1))


@pytest.mark.parametrize("text", [SMALL, AT_LIMIT], ids=["small", "exactly-the-threshold"])
async def test_an_output_up_to_the_threshold_stays_inline(app: UseCases, text: str) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    updated = await app.update.execute(seeded.id, EvaluationChanges(output=text))

    assert updated.output is not None
    assert updated.output.location is PayloadLocation.INLINE
    assert updated.output.text == text
    assert updated.output.size == len(text)
    assert app.blobs.stored() == {}


async def test_large_output_goes_to_the_blob_store_with_a_preview(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    updated = await app.update.execute(seeded.id, EvaluationChanges(output=LARGE))

    output = updated.output
    assert output is not None
    assert output.location is PayloadLocation.FILE
    assert output.key is not None
    assert re.fullmatch(rf"evaluations/{seeded.id}/output\.[0-9a-f]{{12}}\.txt\.zst", output.key)
    assert output.text == LARGE[: THRESHOLDS.preview_size]
    assert output.size == len(LARGE)
    assert output.compressed
    assert (await app.blobs.get(output.key)).decode() == LARGE
    snapshot = msgspec.json.decode(await app.blobs.get(snapshot_key(DEFAULT_TENANT, seeded.id)))
    assert (snapshot["id"], snapshot["version"]) == (seeded.id, updated.version)


async def test_large_error_has_its_own_blob(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    updated = await app.update.execute(seeded.id, EvaluationChanges(error=LARGE))

    assert updated.error is not None
    assert updated.error.key is not None
    assert re.fullmatch(
        rf"evaluations/{seeded.id}/error\.[0-9a-f]{{12}}\.txt\.zst", updated.error.key
    )
    assert (await app.blobs.get(updated.error.key)).decode() == LARGE
    assert updated.output is None


async def test_replacing_a_large_output_by_a_small_one_deletes_the_blob(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    large = await app.update.execute(seeded.id, EvaluationChanges(output=LARGE))
    assert large.output is not None and large.output.key is not None
    blob = large.output.key

    small = await app.update.execute(seeded.id, EvaluationChanges(output=SMALL))

    assert small.output is not None and small.output.location is PayloadLocation.INLINE
    assert blob not in app.blobs.stored()
    assert snapshot_key(DEFAULT_TENANT, seeded.id) not in app.blobs.stored()
    assert app.blobs.stored() == {}


async def test_replacing_a_large_output_by_another_large_one_keeps_the_new_blob(
    app: UseCases,
) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(seeded.id, EvaluationChanges(output=LARGE))
    replacement = "r" * (THRESHOLDS.large_file_threshold * 2)

    updated = await app.update.execute(seeded.id, EvaluationChanges(output=replacement))

    assert updated.output is not None and updated.output.key is not None
    assert set(app.blobs.stored()) == {updated.output.key, snapshot_key(DEFAULT_TENANT, seeded.id)}
    assert (await app.blobs.get(updated.output.key)).decode() == replacement


async def test_clearing_output_deletes_its_blob(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(seeded.id, EvaluationChanges(output=LARGE))

    updated = await app.update.execute(seeded.id, EvaluationChanges(output=None))

    assert updated.output is None
    assert app.blobs.stored() == {}


async def test_output_with_nul_is_refused(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    with pytest.raises(InvalidTextError) as caught:
        await app.update.execute(seeded.id, EvaluationChanges(output="a\x00b"))

    assert caught.value.field == "output"
    assert app.stored(seeded).output is None


async def test_cache_serves_the_written_version(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    before = await app.get.execute(seeded.id)  # fills the cache at version 1
    assert before.version == 1

    await app.update.execute(
        seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING, executor_id="e-1")
    )

    cached = await app.record_cache.get(DEFAULT_TENANT, seeded.id)
    assert cached is not None
    assert cached.version == 2
    assert cached.executor_id == "e-1"
    assert (await app.get.execute(seeded.id)).status is EvaluationStatus.RUNNING


async def test_unset_fields_are_left_alone(app: UseCases) -> None:
    seeded = await app.seed(
        status=EvaluationStatus.RUNNING, celery_task_id="task-1", executor_id="e-1"
    )

    updated = await app.update.execute(
        seeded.id, EvaluationChanges(retries=2, celery_task_id=UNSET)
    )

    assert updated.retries == 2
    assert updated.celery_task_id == "task-1"
    assert updated.executor_id == "e-1"
    assert updated.code == seeded.code


async def test_each_write_gets_its_own_blob_and_the_old_one_goes_after_the_commit(
    app: UseCases,
) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    first = await app.update.execute(seeded.id, EvaluationChanges(output=LARGE))
    second = await app.update.execute(seeded.id, EvaluationChanges(output=LARGE + "more"))

    assert first.output is not None and second.output is not None
    assert first.output.key != second.output.key
    blobs = set(app.blobs.stored())
    assert second.output.key in blobs
    assert first.output.key not in blobs


async def test_a_refused_change_leaves_no_blob_behind(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.COMPLETED)

    await app.update.execute(
        seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING, output=LARGE)
    )
    with pytest.raises(InvalidTextError):
        await app.update.execute(seeded.id, EvaluationChanges(output=LARGE, error="bad\x00"))

    assert app.blobs.stored() == {}
