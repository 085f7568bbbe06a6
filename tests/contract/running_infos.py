"""Running infos and loaders shared by the running-registry tests."""

import builtins
from datetime import UTC, datetime

from application.ports.running_registry import LoadActive
from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus


def loads(infos: builtins.list[RunningInfo]) -> LoadActive:
    async def load() -> builtins.list[RunningInfo]:
        return infos

    return load


def info(
    evaluation_id: str,
    status: EvaluationStatus = EvaluationStatus.RUNNING,
    *,
    executor_id: str | None = None,
    container_id: str | None = None,
    started_at: datetime | None = None,
    timeout: int | None = None,
) -> RunningInfo:
    return RunningInfo(
        evaluation_id=EvaluationId(evaluation_id),
        status=status,
        executor_id=executor_id,
        container_id=container_id,
        started_at=started_at,
        timeout=timeout,
    )


FULL = info(
    "eval_20240101_000000_ab12",
    executor_id="executor-3",
    container_id="c0ffee",
    started_at=datetime(2024, 1, 1, 12, 30, 5, 123456, tzinfo=UTC),
    timeout=300,
)
