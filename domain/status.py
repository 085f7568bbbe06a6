"""The evaluation status state machine.

Terminal states never change. From any live state a terminal one is reachable,
and the forward moves are the ones an executor makes; ``running -> queued`` and
``provisioning -> queued`` are the retry paths.
"""

from enum import StrEnum


class EvaluationStatus(StrEnum):
    SUBMITTED = "submitted"
    QUEUED = "queued"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Whether a container is (being) attached: the running registry tracks these."""
        return self in ACTIVE_STATUSES


TERMINAL_STATUSES = frozenset(
    {EvaluationStatus.COMPLETED, EvaluationStatus.FAILED, EvaluationStatus.CANCELLED}
)
ACTIVE_STATUSES = frozenset({EvaluationStatus.PROVISIONING, EvaluationStatus.RUNNING})

_FORWARD: dict[EvaluationStatus, frozenset[EvaluationStatus]] = {
    EvaluationStatus.SUBMITTED: frozenset({EvaluationStatus.QUEUED}),
    EvaluationStatus.QUEUED: frozenset({EvaluationStatus.PROVISIONING, EvaluationStatus.RUNNING}),
    EvaluationStatus.PROVISIONING: frozenset({EvaluationStatus.RUNNING, EvaluationStatus.QUEUED}),
    EvaluationStatus.RUNNING: frozenset({EvaluationStatus.QUEUED}),
}


def can_transition(current: EvaluationStatus, requested: EvaluationStatus) -> bool:
    """Whether ``current -> requested`` is allowed; staying put is always allowed."""
    if current == requested:
        return True
    if current.is_terminal:
        return False
    if requested.is_terminal:
        return True
    return requested in _FORWARD.get(current, frozenset())
