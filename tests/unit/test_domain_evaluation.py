from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from domain.errors import InvalidTextError
from domain.evaluation import MAX_RUNTIME_MS, Evaluation, ensure_storable_text
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus, StatusMove

T0 = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


def make(status: EvaluationStatus = EvaluationStatus.QUEUED) -> Evaluation:
    return Evaluation(
        id=EvaluationId("e1"), code="print(1)", status=status, created_at=T0, updated_at=T0
    )


def test_running_sets_started_at_once() -> None:
    evaluation = make()
    assert evaluation.change_status(EvaluationStatus.RUNNING, T0)
    assert evaluation.started_at == T0
    evaluation.change_status(EvaluationStatus.QUEUED, T0 + timedelta(seconds=1))
    evaluation.change_status(EvaluationStatus.RUNNING, T0 + timedelta(seconds=2))
    assert evaluation.started_at == T0


def test_terminal_sets_completed_and_runtime() -> None:
    evaluation = make()
    evaluation.change_status(EvaluationStatus.RUNNING, T0)
    evaluation.change_status(EvaluationStatus.COMPLETED, T0 + timedelta(milliseconds=1500))
    assert evaluation.completed_at == T0 + timedelta(milliseconds=1500)
    assert evaluation.runtime_ms == 1500


def test_given_runtime_is_kept() -> None:
    evaluation = make(EvaluationStatus.RUNNING)
    evaluation.started_at = T0
    evaluation.runtime_ms = 150
    evaluation.change_status(EvaluationStatus.COMPLETED, T0 + timedelta(seconds=9))
    assert evaluation.runtime_ms == 150


def test_a_runtime_too_long_to_store_stays_unknown() -> None:
    evaluation = make(EvaluationStatus.RUNNING)
    evaluation.started_at = datetime(6, 3, 2, tzinfo=UTC)  # as a fuzzer sent it
    evaluation.change_status(EvaluationStatus.FAILED, datetime(7466, 3, 29, tzinfo=UTC))
    assert evaluation.runtime_ms is None
    longest = make(EvaluationStatus.RUNNING)
    longest.started_at = T0
    longest.change_status(EvaluationStatus.FAILED, T0 + timedelta(milliseconds=MAX_RUNTIME_MS))
    assert longest.runtime_ms == MAX_RUNTIME_MS


def test_a_late_report_changes_nothing() -> None:
    evaluation = make(EvaluationStatus.COMPLETED)
    before = msgspec.structs.asdict(evaluation)
    assert evaluation.change_status(EvaluationStatus.RUNNING, T0) is StatusMove.LATE
    assert msgspec.structs.asdict(evaluation) == before


def test_an_override_reopens_a_finished_evaluation() -> None:
    evaluation = make(EvaluationStatus.RUNNING)
    evaluation.change_status(EvaluationStatus.COMPLETED, T0 + timedelta(seconds=2))
    move = evaluation.change_status(EvaluationStatus.QUEUED, T0, override=True)
    assert move is StatusMove.APPLY
    assert evaluation.status is EvaluationStatus.QUEUED
    assert (evaluation.completed_at, evaluation.runtime_ms) == (None, None)


def test_an_override_between_terminal_states_keeps_the_end() -> None:
    evaluation = make(EvaluationStatus.FAILED)
    evaluation.completed_at = T0
    evaluation.change_status(EvaluationStatus.COMPLETED, T0 + timedelta(hours=1), override=True)
    assert (evaluation.status, evaluation.completed_at) == (EvaluationStatus.COMPLETED, T0)


def test_same_status_is_no_change() -> None:
    evaluation = make(EvaluationStatus.COMPLETED)
    assert evaluation.change_status(EvaluationStatus.COMPLETED, T0) is StatusMove.SAME


def test_requeue_drops_container_info() -> None:
    evaluation = msgspec.structs.replace(
        make(EvaluationStatus.RUNNING), executor_id="x1", container_id="c1"
    )
    evaluation.change_status(EvaluationStatus.QUEUED, T0)
    assert (evaluation.executor_id, evaluation.container_id) == (None, None)


def test_metadata_merge_and_touch() -> None:
    evaluation = make()
    evaluation.metadata = {"a": 1, "b": 2}
    evaluation.merge_metadata({"b": 3, "c": 4})
    assert evaluation.metadata == {"a": 1, "b": 3, "c": 4}
    evaluation.touch(T0 + timedelta(seconds=1))
    assert evaluation.version == 2
    assert evaluation.updated_at == T0 + timedelta(seconds=1)


def test_nul_is_refused() -> None:
    with pytest.raises(InvalidTextError) as info:
        ensure_storable_text("output", "a\x00b")
    assert info.value.field == "output"
    assert ensure_storable_text("output", "ok") == "ok"


def test_deep_copy_is_equal_and_independent() -> None:
    from domain.payload import PayloadLocation, StoredPayload

    original = make(EvaluationStatus.RUNNING)
    original.metadata = {"tags": ["a", {"b": 1.0}], "none": None, "n": 2**40}
    original.output = StoredPayload(
        location=PayloadLocation.FILE, size=200_000, text="head", compressed=True, key="k"
    )
    copied = original.deep_copy()
    assert copied == original
    assert type(copied.metadata["tags"][1]["b"]) is float
    copied.metadata["tags"].append("c")
    copied.metadata["tags"][1]["b"] = 2.0
    assert original.metadata == {"tags": ["a", {"b": 1.0}], "none": None, "n": 2**40}
