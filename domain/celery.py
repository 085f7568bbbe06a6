"""How Celery task states map onto evaluation statuses."""

from domain.status import EvaluationStatus

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
