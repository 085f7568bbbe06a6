"""Typed client for the Crucible Storage Service, blocking (``StorageClient``) and asyncio
(``AsyncStorageClient``) with the same methods."""

from msgspec import UNSET, UnsetType

from crucible_storage._async import AsyncStorageClient
from crucible_storage._sync import StorageClient
from crucible_storage.errors import (
    Accepted,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServerError,
    StorageError,
    TransportError,
    Unauthorized,
    Unavailable,
)
from crucible_storage.models import (
    CeleryUpdateResult,
    CompleteEvaluation,
    Evaluation,
    EvaluationFields,
    EvaluationFieldsPage,
    EvaluationPage,
    EvaluationStatus,
    Event,
    Health,
    LogAppend,
    Logs,
    Problem,
    RunningEvaluation,
    Statistics,
    StorageInfo,
)
from crucible_storage.retry import Backoff

__all__ = [
    "UNSET",
    "Accepted",
    "AsyncStorageClient",
    "Backoff",
    "CeleryUpdateResult",
    "CompleteEvaluation",
    "Conflict",
    "Evaluation",
    "EvaluationFields",
    "EvaluationFieldsPage",
    "EvaluationPage",
    "EvaluationStatus",
    "Event",
    "Health",
    "InvalidRequest",
    "LogAppend",
    "Logs",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "Problem",
    "RunningEvaluation",
    "ServerError",
    "Statistics",
    "StorageClient",
    "StorageError",
    "StorageInfo",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnsetType",
]
