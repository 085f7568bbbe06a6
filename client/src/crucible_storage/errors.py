# ruff: noqa: N818  (the names the issue fixed: NotFound, Conflict, ...)
"""The errors a client call raises, one class per way a caller reacts to it.

Every error is a ``StorageError`` and keeps the HTTP status, the service's
problem (RFC 9457) when there was one, and the request id the service logged
the request under (``X-Request-ID``), so a report can be matched to its logs.
"""

from collections.abc import Mapping

import msgspec

from crucible_storage.models import FieldProblem, Problem, WriteAccepted


class StorageError(Exception):
    """Base of every error of the client."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        problem: Problem | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem
        self.request_id = request_id


class NotFound(StorageError):
    """404: no such evaluation (or it was deleted)."""


class Conflict(StorageError):
    """409: e.g. a duplicate id on create; ``problem.type`` names the kind."""


class PreconditionFailed(StorageError):
    """412: ``If-Match`` named an older version than the stored one."""


class InvalidRequest(StorageError):
    """400 or 422: the request was refused; ``field`` names the offending field."""

    @property
    def errors(self) -> list[FieldProblem]:
        return list(self.problem.errors) if self.problem else []

    @property
    def field(self) -> str | None:
        if self.problem is None:
            return None
        if self.problem.errors:
            return self.problem.errors[0].field
        return self.problem.field


class CursorExpired(StorageError):
    """410: the change feed no longer keeps the cursor, so the changes after it cannot all
    be given. Re-read what you follow, then go on from ``latest``."""

    @property
    def latest(self) -> str | None:
        return self.problem.latest if self.problem else None


class PayloadTooLarge(StorageError):
    """413: the body is over the service's limit."""


class Unauthorized(StorageError):
    """401 (no known API key) or 403 (the key's scope is too small)."""


class ServerError(StorageError):
    """A 5xx answer that retrying did not cure."""


class Unavailable(ServerError):
    """503 after every retry: a storage backend is down and nothing was stored.

    ``backend`` names it; ``cause`` is set when the database was up but gave the request
    no connection (``connection-slots``: PostgreSQL's ``max_connections``;
    ``connection-pool``: the service's own pool), which more replicas would worsen, or
    ended the write to let a concurrent one through (``write-conflict``).
    """

    @property
    def backend(self) -> str | None:
        return self.problem.backend if self.problem else None

    @property
    def cause(self) -> str | None:
        return self.problem.cause if self.problem else None


class TransportError(StorageError):
    """The service could not be reached, or the connection broke, after every retry."""


class Accepted(StorageError):
    """202: not a failure. The write is durable in the service's failover journal and
    will be applied when its database is back; the new record is not known yet.

    Raised because the call cannot return the record it promises.
    """

    def __init__(self, accepted: WriteAccepted, *, request_id: str | None = None) -> None:
        super().__init__(accepted.detail, status=202, request_id=request_id)
        self.evaluation_id = accepted.evaluation_id
        self.journal_entry = accepted.journal_entry


_BY_STATUS: dict[int, type[StorageError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    410: CursorExpired,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    422: InvalidRequest,
    503: Unavailable,
}

_problem_decoder = msgspec.json.Decoder(Problem)


def error_for(status: int, headers: Mapping[str, str], body: bytes) -> StorageError:
    """The error of a 4xx/5xx answer; a body that is no problem+json still gives one."""
    try:
        problem: Problem | None = _problem_decoder.decode(body) if body else None
    except msgspec.DecodeError:
        problem = None
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else StorageError)
    if problem is not None:
        message = f"{status} {problem.title}: {problem.detail}".rstrip(": ")
    else:
        message = f"{status} {body[:200].decode(errors='replace')}".rstrip()
    return kind(message, status=status, problem=problem, request_id=headers.get("x-request-id"))
