"""How Celery task states map onto evaluation statuses."""

from domain.status import EvaluationStatus, can_transition

CELERY_STATE_TO_STATUS: dict[str, EvaluationStatus] = {
    "PENDING": EvaluationStatus.QUEUED,
    "RECEIVED": EvaluationStatus.QUEUED,
    "STARTED": EvaluationStatus.RUNNING,
    "RETRY": EvaluationStatus.QUEUED,
    "SUCCESS": EvaluationStatus.COMPLETED,
    "FAILURE": EvaluationStatus.FAILED,
    "REVOKED": EvaluationStatus.CANCELLED,
}


def status_for_celery_state(state: str) -> EvaluationStatus | None:
    """The status a task state means, or ``None`` for a state Celery does not define."""
    return CELERY_STATE_TO_STATUS.get(state.upper())


_TASK_START_STATES = frozenset({"PENDING", "RECEIVED"})


def refusal_for_celery_state(state: str, current: EvaluationStatus) -> str | None:
    """Why ``state`` may not move an evaluation in ``current``, or ``None`` if it may.

    Celery redelivers and reorders: ``PENDING``/``RECEIVED`` describe a task that
    has not started, so one arriving after ``STARTED`` is stale and only ``RETRY``
    may send an active evaluation back to the queue. Terminal states never move.
    """
    status = status_for_celery_state(state)
    if status is None:
        return f"'{state}' is not a Celery task state"
    if not can_transition(current, status):
        return f"status '{current}' cannot move to '{status}'"
    if state.upper() in _TASK_START_STATES and current.is_active:
        return f"'{state.upper()}' arrived after the task started (status '{current}')"
    return None
