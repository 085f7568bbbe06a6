"""Failures a use case reports; the HTTP edge maps each to a status code."""

from enum import StrEnum
from typing import TypeVar

from application.backends import Backend
from domain.payload import PayloadKind, PayloadLocation

T = TypeVar("T")


class ApplicationError(Exception):
    """Base of every error a use case raises on purpose."""


class EvaluationNotFoundError(ApplicationError):
    def __init__(self, evaluation_id: str) -> None:
        self.evaluation_id = evaluation_id
        super().__init__(f"evaluation '{evaluation_id}' not found")


def require_found(found: T | None, evaluation_id: str) -> T:
    """What a read of ``evaluation_id`` found; None (no such record) is a 404."""
    if found is None:
        raise EvaluationNotFoundError(evaluation_id)
    return found


class DuplicateEvaluationError(ApplicationError):
    def __init__(self, evaluation_id: str) -> None:
        self.evaluation_id = evaluation_id
        super().__init__(f"evaluation '{evaluation_id}' already exists")


class VersionConflictError(ApplicationError):
    """The stored version moved on since the caller (or this attempt) read it."""

    def __init__(self, evaluation_id: str, expected: int, actual: int | None = None) -> None:
        self.evaluation_id = evaluation_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"evaluation '{evaluation_id}' is at version {actual}, not {expected}"
            if actual is not None
            else f"evaluation '{evaluation_id}' changed since version {expected}"
        )


class PreconditionFailedError(ApplicationError):
    """``If-Match`` named a version that is no longer current."""

    def __init__(self, evaluation_id: str, expected: int, actual: int) -> None:
        self.evaluation_id = evaluation_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"evaluation '{evaluation_id}' is at version {actual}; If-Match named {expected}"
        )


class WriteConflictError(ApplicationError):
    """The database ended this write's transaction to let a concurrent one through (a
    deadlock or a serialization failure): nothing of it was written, and the same write
    may be sent again. Not an outage: failover does not journal it."""

    def __init__(self, backend: Backend, detail: str) -> None:
        self.backend = backend
        self.detail = detail
        super().__init__(f"{backend} ended this write for a concurrent one: {detail}")


class BackendUnavailableError(ApplicationError):
    """A storage backend cannot be reached; nothing was stored."""

    def __init__(self, backend: Backend, detail: str) -> None:
        self.backend = backend
        self.detail = detail
        super().__init__(f"{backend} unavailable: {detail}")


class StatementTimeoutError(BackendUnavailableError):
    """The database gave up on a statement at its time limit (``DB_STATEMENT_TIMEOUT_MS``):
    reachable, but the statement asked too much of it."""


class ConnectionLimit(StrEnum):
    """Which limit left a request without a database connection."""

    # PostgreSQL refused a new connection: every slot of ``max_connections`` is taken
    # (SQLSTATE 53300, "sorry, too many clients already").
    SERVER_SLOTS = "connection-slots"
    # Every connection of this process's pool (``DB_POOL_SIZE``) stayed busy past
    # ``DB_CONNECT_TIMEOUT_S``.
    POOL = "connection-pool"


class ConnectionsExhaustedError(BackendUnavailableError):
    """The database answers but gave this request no connection (``limit`` says which).

    Failover treats it as an outage, since nothing was sent: a write is journaled, a
    read the cache or the journal cannot serve is refused. It is told apart so that the
    answer and ``/health`` can name it, and a client retry sooner: a slot frees as soon
    as any session ends."""

    def __init__(self, backend: Backend, detail: str, limit: ConnectionLimit) -> None:
        super().__init__(backend, detail)
        self.limit = limit


class BlobMissingError(ApplicationError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"blob '{key}' is missing")


class InvalidRequestError(ApplicationError):
    """Input that is well-formed but cannot be served (names the field)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NoDirectUrlError(ApplicationError):
    """The payload cannot be linked to: absent, or not in object storage."""

    def __init__(
        self,
        evaluation_id: str,
        kind: PayloadKind,
        location: PayloadLocation | None,
        *,
        sealed: bool = False,
    ) -> None:
        self.evaluation_id = evaluation_id
        self.kind = kind
        self.location = location
        self.sealed = sealed
        if location is None:
            message = f"evaluation '{evaluation_id}' has no {kind}"
        elif sealed:
            message = (
                f"the {kind} of evaluation '{evaluation_id}' is encrypted at rest: a direct "
                f"link would serve ciphertext; read /evaluations/{evaluation_id}/{kind}"
            )
        else:
            message = (
                f"the {kind} of evaluation '{evaluation_id}' is stored {location.value}, "
                "not in object storage"
            )
        super().__init__(message)


class JournalPendingError(ApplicationError):
    """A fix refused: the failover journal holds writes not yet in the database."""

    def __init__(self) -> None:
        super().__init__(
            "the failover journal holds writes not yet in the database; "
            "their blobs would look like orphans until they are replayed"
        )


class UnknownBackendError(ApplicationError):
    def __init__(self, backend: str, known: list[str]) -> None:
        self.backend = backend
        self.known = known
        super().__init__(f"unknown storage backend '{backend}'; known: {', '.join(known)}")


class WriteAcceptedError(ApplicationError):
    """Journaled for the primary, but its outcome cannot be computed yet (answered 202).

    The record was created before the primary became unavailable and is not in
    the cache, so the new state is unknown until the journal is replayed.
    """

    def __init__(self, evaluation_id: str, entry_id: str) -> None:
        self.evaluation_id = evaluation_id
        self.entry_id = entry_id
        super().__init__(
            f"the write to evaluation '{evaluation_id}' is journaled as {entry_id} and will be "
            "applied when the primary storage is back"
        )


class ChangeCursorExpiredError(ApplicationError):
    """A feed cursor older than the feed keeps (or not from this feed): nothing to resume."""

    def __init__(self, field: str, retention_s: int, latest: str | None) -> None:
        self.field = field
        self.retention_s = retention_s
        self.latest = latest
        super().__init__(
            f"`{field}` is older than the {retention_s} s the change feed keeps, or not from "
            "this feed: re-read the evaluations you follow, then follow the feed from `latest` "
            "(or read it without a cursor, from the oldest change it keeps)"
        )
