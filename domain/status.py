"""The evaluation status state machine: the platform's transition table, made safe
for reports that arrive out of order from independent workers.

The gateway, the storage worker and the Celery tasks each report statuses on
their own, so a report may skip a step (``provisioning`` while still
``submitted``) or arrive after the evaluation has moved past it (a late
``running`` after ``completed``). A move the table lists, or any forward jump,
is applied; a report of a status already passed is late: acknowledged, never
applied and never an error. Terminal states change only by an admin override.
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


class StatusMove(StrEnum):
    """How a requested status relates to the current one."""

    SAME = "same"  # nothing to do
    APPLY = "apply"  # a move of the table or a forward jump
    LATE = "late"  # a status already passed: acknowledged, not applied


S = EvaluationStatus
TERMINAL_STATUSES = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})
ACTIVE_STATUSES = frozenset({S.PROVISIONING, S.RUNNING})

# The platform's table (``shared/types/evaluation-state-transitions.yaml`` there).
TRANSITIONS: dict[EvaluationStatus, frozenset[EvaluationStatus]] = {
    S.SUBMITTED: frozenset({S.QUEUED, S.FAILED, S.CANCELLED}),
    S.QUEUED: frozenset({S.PROVISIONING, S.RUNNING, S.FAILED, S.CANCELLED}),
    S.PROVISIONING: frozenset({S.RUNNING, S.COMPLETED, S.QUEUED, S.FAILED, S.CANCELLED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.QUEUED, S.PROVISIONING}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}

# How far along the lifecycle a status lies: a jump to a higher rank is progress.
_RANK = {S.SUBMITTED: 0, S.QUEUED: 1, S.PROVISIONING: 2, S.RUNNING: 3}


def rank(status: EvaluationStatus) -> int:
    return _RANK.get(status, 4)


def judge_move(current: EvaluationStatus, requested: EvaluationStatus) -> StatusMove:
    """Whether a report of ``requested`` moves an evaluation in ``current``."""
    if current == requested:
        return StatusMove.SAME
    if current.is_terminal:
        return StatusMove.LATE
    if requested in TRANSITIONS[current] or rank(requested) > rank(current):
        return StatusMove.APPLY
    return StatusMove.LATE


def can_transition(current: EvaluationStatus, requested: EvaluationStatus) -> bool:
    """Whether ``current -> requested`` would be applied; staying put is always allowed."""
    return judge_move(current, requested) is not StatusMove.LATE
