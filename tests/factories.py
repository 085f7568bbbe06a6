"""Polyfactory factories for test data the domain accepts.

Every value built here passes the domain's own rules: ids follow
``domain.identifiers`` (the generated ``eval_YYYYMMDD_HHMMSS_<hex>`` form),
timestamps are timezone-aware UTC and agree with the status, text holds no NUL
character. Any field can still be pinned: ``EvaluationFactory.build(status=...)``.
"""

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from msgspec import UNSET
from polyfactory import PostGenerated, Use
from polyfactory.factories.msgspec_factory import MsgspecFactory

from application.commands import NewEvaluation
from domain.celery import CELERY_STATE_TO_STATUS
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId, parse_evaluation_id
from domain.status import ACTIVE_STATUSES, EvaluationStatus
from interfaces.http.schemas import (
    AddEventBody,
    AppendLogBody,
    CeleryUpdateBody,
    CreateEvaluationBody,
)

BASE_TIME = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
LANGUAGES = ("python", "javascript", "go", "rust")
EVENT_TYPES = ("queued", "container_started", "container_finished", "log_flushed")
CELERY_STATES = tuple(CELERY_STATE_TO_STATUS)

_CODE = {
    "python": "print({n})",
    "javascript": "console.log({n});",
    "go": 'package main\nimport "fmt"\nfunc main() {{ fmt.Println({n}) }}',
    "rust": 'fn main() {{ println!("{{}}", {n}); }}',
}
_rng = random.Random()


def _hex(length: int) -> str:
    return "".join(_rng.choice("0123456789abcdef") for _ in range(length))


def evaluation_id(at: datetime | None = None) -> EvaluationId:
    """A valid id in the service's generated form (random suffix)."""
    return parse_evaluation_id(f"eval_{at or BASE_TIME:%Y%m%d_%H%M%S}_{_hex(6)}")


def code_for(language: str) -> str:
    return _CODE.get(language, "print({n})").format(n=_rng.randint(0, 999))


def plausible_metadata() -> dict[str, Any]:
    return {
        "submitted_by": f"user-{_rng.randint(1, 50)}",
        "priority": _rng.randint(1, 5),
        "tags": _rng.sample(["ci", "nightly", "smoke", "gpu"], k=2),
    }


def _created_at() -> datetime:
    return BASE_TIME + timedelta(seconds=_rng.randint(0, 30 * 24 * 3600))


def _id_from_created(_name: str, values: dict[str, Any]) -> EvaluationId:
    created: datetime = values["created_at"]
    return evaluation_id(created)


def _code_from_language(_name: str, values: dict[str, Any]) -> str:
    return code_for(values["language"])


def _same_as_created(_name: str, values: dict[str, Any]) -> datetime:
    created: datetime = values["created_at"]
    return created


def _started_at(_name: str, values: dict[str, Any]) -> datetime | None:
    status: EvaluationStatus = values["status"]
    if status in {EvaluationStatus.RUNNING, EvaluationStatus.COMPLETED, EvaluationStatus.FAILED}:
        created: datetime = values["created_at"]
        return created + timedelta(seconds=1)
    return None


def _completed_at(_name: str, values: dict[str, Any]) -> datetime | None:
    status: EvaluationStatus = values["status"]
    if not status.is_terminal:
        return None
    start: datetime = values.get("started_at") or values["created_at"]
    return start + timedelta(milliseconds=_rng.randint(1, 60_000))


def _runtime_ms(_name: str, values: dict[str, Any]) -> int | None:
    started: datetime | None = values.get("started_at")
    completed: datetime | None = values.get("completed_at")
    if started is None or completed is None:
        return None
    return int((completed - started).total_seconds() * 1000)


def _when_active(prefix: str) -> PostGenerated:
    def generate(_name: str, values: dict[str, Any]) -> str | None:
        return f"{prefix}-{_hex(8)}" if values["status"] in ACTIVE_STATUSES else None

    return PostGenerated(generate)


class EvaluationFactory(MsgspecFactory[Evaluation]):
    """A stored record at version 1, with timestamps and container info matching its status."""

    __check_model__ = True

    id = PostGenerated(_id_from_created)
    code = PostGenerated(_code_from_language)
    language = Use(_rng.choice, LANGUAGES)
    status = Use(_rng.choice, list(EvaluationStatus))
    created_at = Use(_created_at)
    updated_at = PostGenerated(_same_as_created)
    started_at = PostGenerated(_started_at)
    completed_at = PostGenerated(_completed_at)
    runtime_ms = PostGenerated(_runtime_ms)
    metadata = Use(plausible_metadata)
    output = None
    error = None
    celery_task_id = None
    retries = 0
    executor_id = _when_active("executor")
    container_id = _when_active("container")
    last_update = None  # stamped by log appends, which the tests that need it make
    deleted_at = None
    version = 1


class NewEvaluationFactory(MsgspecFactory[NewEvaluation]):
    """What ``CreateEvaluation`` takes; ``id`` is ``None`` (generated) unless pinned."""

    __check_model__ = True

    code = PostGenerated(_code_from_language)
    id = None
    language = Use(_rng.choice, LANGUAGES)
    status = EvaluationStatus.QUEUED
    metadata = Use(plausible_metadata)
    celery_task_id = None
    executor_id = None
    container_id = None


class CreateEvaluationBodyFactory(MsgspecFactory[CreateEvaluationBody]):
    __check_model__ = True

    code = PostGenerated(_code_from_language)
    id = Use(lambda: str(evaluation_id(_created_at())))
    language = Use(_rng.choice, LANGUAGES)
    status = Use(_rng.choice, [EvaluationStatus.SUBMITTED, EvaluationStatus.QUEUED])
    metadata = Use(plausible_metadata)
    celery_task_id = Use(lambda: str(uuid.UUID(int=_rng.getrandbits(128))))
    executor_id = None
    container_id = None


class AppendLogBodyFactory(MsgspecFactory[AppendLogBody]):
    __check_model__ = True

    content = Use(lambda: "".join(f"step {i}: ok\n" for i in range(_rng.randint(1, 5))))


class AddEventBodyFactory(MsgspecFactory[AddEventBody]):
    __check_model__ = True

    type = Use(_rng.choice, EVENT_TYPES)
    event_type = UNSET
    message = Use(lambda: f"event message {_rng.randint(0, 999)}")
    metadata = Use(lambda: {"source": "worker", "attempt": _rng.randint(1, 3)})
    timestamp = None
    event_id = Use(lambda: _hex(32))


class CeleryUpdateBodyFactory(MsgspecFactory[CeleryUpdateBody]):
    __check_model__ = True

    task_state = Use(_rng.choice, CELERY_STATES)
    celery_task_id = Use(lambda: str(uuid.UUID(int=_rng.getrandbits(128))))
    retries = UNSET
    output = UNSET
    error = UNSET
