"""The factories build only what the domain and the HTTP schemas accept."""

from typing import Any

import msgspec
import pytest
from polyfactory.factories.msgspec_factory import MsgspecFactory

from domain.celery import status_for_celery_state
from domain.evaluation import Evaluation, ensure_storable_text
from domain.identifiers import parse_evaluation_id
from domain.status import ACTIVE_STATUSES, EvaluationStatus
from interfaces.http.schemas import (
    AddEventBody,
    AppendLogBody,
    CeleryUpdateBody,
    CreateEvaluationBody,
)
from tests.factories import (
    AddEventBodyFactory,
    AppendLogBodyFactory,
    CeleryUpdateBodyFactory,
    CreateEvaluationBodyFactory,
    EvaluationFactory,
    NewEvaluationFactory,
)

SAMPLES = 50


def test_evaluations_are_valid_and_consistent_with_their_status() -> None:
    for evaluation in EvaluationFactory.batch(SAMPLES):
        assert parse_evaluation_id(evaluation.id) == evaluation.id
        ensure_storable_text("code", evaluation.code)
        assert evaluation.created_at.tzinfo is not None
        assert evaluation.updated_at == evaluation.created_at
        assert evaluation.version == 1 and evaluation.deleted_at is None
        assert (evaluation.completed_at is not None) == evaluation.status.is_terminal
        if evaluation.status is EvaluationStatus.RUNNING:
            assert evaluation.started_at is not None
        if evaluation.started_at is not None and evaluation.completed_at is not None:
            assert evaluation.runtime_ms is not None and evaluation.runtime_ms >= 0
        assert (evaluation.container_id is not None) == (evaluation.status in ACTIVE_STATUSES)


def test_evaluations_round_trip_through_json() -> None:
    evaluation = EvaluationFactory.build(status=EvaluationStatus.COMPLETED)

    decoded = msgspec.json.decode(msgspec.json.encode(evaluation), type=Evaluation)

    assert decoded == evaluation


def test_pinned_fields_win() -> None:
    evaluation = EvaluationFactory.build(status=EvaluationStatus.QUEUED, language="go")

    assert (evaluation.status, evaluation.language) == (EvaluationStatus.QUEUED, "go")
    assert "fmt.Println" in evaluation.code
    assert evaluation.started_at is None and evaluation.completed_at is None


@pytest.mark.parametrize(
    ("factory", "schema"),
    [
        (CreateEvaluationBodyFactory, CreateEvaluationBody),
        (AppendLogBodyFactory, AppendLogBody),
        (AddEventBodyFactory, AddEventBody),
        (CeleryUpdateBodyFactory, CeleryUpdateBody),
    ],
)
def test_bodies_pass_the_request_schema(
    factory: type[MsgspecFactory[Any]], schema: type[msgspec.Struct]
) -> None:
    for body in factory.batch(SAMPLES):
        encoded = msgspec.json.encode(body)
        assert b"\\u0000" not in encoded
        assert msgspec.json.decode(encoded, type=schema) == body


def test_create_bodies_carry_valid_ids_and_celery_states_are_known() -> None:
    for body in CreateEvaluationBodyFactory.batch(SAMPLES):
        assert body.id is not None and parse_evaluation_id(body.id) == body.id
    for update in CeleryUpdateBodyFactory.batch(SAMPLES):
        assert status_for_celery_state(update.task_state) is not None


def test_new_evaluations_leave_the_id_to_the_service() -> None:
    assert all(new.id is None for new in NewEvaluationFactory.batch(SAMPLES))
