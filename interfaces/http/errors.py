"""Every failure leaves as RFC 9457 problem+json, naming the field where there is one."""

import functools
import logging
import math
import re
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.status_codes import (
    HTTP_202_ACCEPTED,
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_410_GONE,
    HTTP_412_PRECONDITION_FAILED,
    HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from application.errors import (
    BackendUnavailableError,
    BlobMissingError,
    ChangeCursorExpiredError,
    ConnectionLimit,
    ConnectionsExhaustedError,
    DuplicateEvaluationError,
    EvaluationNotFoundError,
    InvalidRequestError,
    NoDirectUrlError,
    PreconditionFailedError,
    UnknownBackendError,
    VersionConflictError,
    WriteAcceptedError,
    WriteConflictError,
)
from domain.errors import (
    InvalidIdentifierError,
    InvalidTextError,
    UnsatisfiableRangeError,
)

logger = logging.getLogger("storage_service.http")
PROBLEM_BASE = "https://crucible.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    kind: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=status,
        title=title,
        detail=detail,
        type_=PROBLEM_BASE + kind,
        headers=headers,
        extra=extra or None,
    )


def invalid_field(field: str, message: str) -> ProblemDetailsException:
    return problem(
        HTTP_422_UNPROCESSABLE_ENTITY,
        "Invalid request",
        f"{field}: {message}",
        "invalid-request",
        errors=[{"field": field, "message": message}],
    )


def _not_found(exc: EvaluationNotFoundError) -> ProblemDetailsException:
    return problem(HTTP_404_NOT_FOUND, "Evaluation not found", str(exc), "not-found")


def _duplicate(exc: DuplicateEvaluationError) -> ProblemDetailsException:
    return problem(
        HTTP_409_CONFLICT, "Evaluation already exists", str(exc), "duplicate", field="id"
    )


def _conflict(exc: VersionConflictError) -> ProblemDetailsException:
    return problem(HTTP_409_CONFLICT, "Concurrent update", str(exc), "concurrent-update")


def _precondition(exc: PreconditionFailedError) -> ProblemDetailsException:
    return problem(
        HTTP_412_PRECONDITION_FAILED,
        "Precondition failed",
        str(exc),
        "precondition-failed",
        current_version=exc.actual,
    )


def _bad_id(exc: InvalidIdentifierError) -> ProblemDetailsException:
    return invalid_field("id", exc.reason)


def _bad_text(exc: InvalidTextError) -> ProblemDetailsException:
    return invalid_field(exc.field, exc.reason)


def _bad_request(exc: InvalidRequestError) -> ProblemDetailsException:
    return invalid_field(exc.field, exc.message)


def _cursor_expired(exc: ChangeCursorExpiredError) -> ProblemDetailsException:
    return problem(
        HTTP_410_GONE,
        "Cursor expired",
        str(exc),
        "cursor-expired",
        field=exc.field,
        retention_s=exc.retention_s,
        latest=exc.latest,
    )


def _unknown_backend(exc: UnknownBackendError) -> ProblemDetailsException:
    return problem(
        HTTP_404_NOT_FOUND, "Unknown backend", str(exc), "unknown-backend", known=exc.known
    )


# A 503 for want of a database connection asks for a retry after this many seconds: a
# connection (or a server slot) frees as soon as any request or session ends.
EXHAUSTED_RETRY_AFTER_S = 1
# A write the database ended for a concurrent one (a deadlock's victim) may be sent again
# at once; the other writer has taken its rows by the time the answer is out.
WRITE_CONFLICT_RETRY_AFTER_S = 1
WRITE_CONFLICT_CAUSE = "write-conflict"

_EXHAUSTED = {
    ConnectionLimit.SERVER_SLOTS: "PostgreSQL refused a new connection: all of its "
    "connection slots (max_connections) are in use",
    ConnectionLimit.POOL: "every connection of the service's database pool (DB_POOL_SIZE) "
    "stayed in use past DB_CONNECT_TIMEOUT_S",
}


def _unavailable(exc: BackendUnavailableError, *, retry_after_s: int) -> ProblemDetailsException:
    """503 with ``Retry-After``; a refused or exhausted connection is named in ``cause``."""
    logger.error("backend unavailable: %s", exc)
    if isinstance(exc, ConnectionsExhaustedError):
        detail = f"has no connection for this request: {_EXHAUSTED[exc.limit]}; nothing was stored"
        return _storage_unavailable(exc.backend, detail, EXHAUSTED_RETRY_AFTER_S, exc.limit.value)
    return _storage_unavailable(exc.backend, "is unavailable; nothing was stored", retry_after_s)


def _ended(exc: WriteConflictError) -> ProblemDetailsException:
    """A 503 (never kept for an ``Idempotency-Key``, retried by clients), not a 409: the
    same write, sent again as it is, will very likely pass."""
    logger.warning("write ended for a concurrent one: %s", exc)
    detail = (
        f"ended this write to let a concurrent one through ({exc.detail}); nothing was "
        "stored, and the same write may be sent again"
    )
    return _storage_unavailable(
        exc.backend, detail, WRITE_CONFLICT_RETRY_AFTER_S, WRITE_CONFLICT_CAUSE
    )


def _storage_unavailable(
    backend: str, detail: str, retry_after_s: int, cause: str | None = None
) -> ProblemDetailsException:
    """The 503 of ``backend`` (``detail`` follows its name), ``cause`` when one is named."""
    return problem(
        HTTP_503_SERVICE_UNAVAILABLE,
        "Storage unavailable",
        f"the {backend} backend {detail}",
        "unavailable",
        headers={"Retry-After": str(retry_after_s)},
        backend=backend,
        **({} if cause is None else {"cause": cause}),
    )


def _blob_missing(exc: BlobMissingError) -> ProblemDetailsException:
    logger.error("record points at a missing blob: %s", exc.key)
    return problem(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Stored content missing",
        "the record's content could not be found in the blob store",
        "blob-missing",
    )


def _unsatisfiable(exc: UnsatisfiableRangeError) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE,
        title="Range not satisfiable",
        detail=str(exc),
        type_=PROBLEM_BASE + "range-not-satisfiable",
        headers={"Content-Range": f"bytes */{exc.size}"},
    )


def _no_direct_url(exc: NoDirectUrlError) -> ProblemDetailsException:
    """404 when there is no payload to link to; 409 when it is stored elsewhere than S3."""
    if exc.location is None:
        return problem(HTTP_404_NOT_FOUND, f"No {exc.kind}", str(exc), f"no-{exc.kind}")
    if exc.sealed:
        return problem(HTTP_409_CONFLICT, "Encrypted at rest", str(exc), "encrypted-at-rest")
    return problem(
        HTTP_409_CONFLICT,
        "Not in object storage",
        str(exc),
        "not-in-object-storage",
        location=exc.location.value,
    )


def _validation(exc: ValidationException) -> ProblemDetailsException:
    """Litestar's own request validation, re-shaped: 422 with each field named."""
    errors: list[dict[str, str]] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict):
            message = str(item.get("message", ""))
            key = _field_in(message) or item.get("key") or item.get("source") or "body"
            errors.append({"field": str(key), "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or str(exc.detail)
    return problem(
        HTTP_422_UNPROCESSABLE_ENTITY, "Invalid request", detail, "invalid-request", errors=errors
    )


def _field_in(message: str) -> str | None:
    """The field a msgspec message names: "... at `$.status`" or "field `code`"."""
    located = re.search(r"at `\$\.([^`]+)`", message)
    if located:
        return located.group(1)
    named = re.search(r"field `([^`]+)`", message)
    return named.group(1) if named else None


def _recursion(exc: RecursionError) -> ProblemDetailsException:
    """The JSON decoder gives up on a body nested too deeply: the client's fault, not ours."""
    if "deserializing" not in str(exc):  # any other recursion is a bug: 500, logged
        logger.error("unhandled recursion error", exc_info=exc)
        return problem(
            HTTP_500_INTERNAL_SERVER_ERROR,
            "Internal server error",
            "an unexpected error occurred",
            "internal",
        )
    return problem(
        HTTP_400_BAD_REQUEST, "Malformed request", "the JSON body is nested too deeply", "too-deep"
    )


class ProblemRequest(Request[Any, Any, Any]):
    """The request class of the app: a JSON body that is not UTF-8 is the client's error.

    msgspec reports invalid UTF-8 inside a JSON string as ``UnicodeDecodeError``,
    which Litestar, unlike a ``DecodeError``, does not turn into a 400. Caught
    here, where it can only come from the body: the same error raised anywhere
    else (stored content that does not decode) stays a 500.
    """

    async def json(self) -> Any:
        try:
            return await super().json()
        except UnicodeDecodeError as exc:
            raise problem(
                HTTP_400_BAD_REQUEST,
                "Malformed request",
                "the JSON body is not valid UTF-8",
                "not-utf8",
            ) from exc


def _http(exc: HTTPException) -> ProblemDetailsException:
    return problem(exc.status_code, str(exc.detail), str(exc.detail), "http-error")


_EXCEPTION_MAP: dict[type[Exception], Callable[[Any], ProblemDetailsException]] = {
    EvaluationNotFoundError: _not_found,
    DuplicateEvaluationError: _duplicate,
    VersionConflictError: _conflict,
    WriteConflictError: _ended,
    PreconditionFailedError: _precondition,
    InvalidIdentifierError: _bad_id,
    InvalidTextError: _bad_text,
    InvalidRequestError: _bad_request,
    UnknownBackendError: _unknown_backend,
    ChangeCursorExpiredError: _cursor_expired,
    BlobMissingError: _blob_missing,
    UnsatisfiableRangeError: _unsatisfiable,
    NoDirectUrlError: _no_direct_url,
    ValidationException: _validation,
    HTTPException: _http,
    RecursionError: _recursion,
}


def exception_map(
    retry_after_s: float,
) -> dict[type[Exception], Callable[[Any], ProblemDetailsException]]:
    """Every mapped exception's answer; a backend's 503 asks for a retry after
    ``retry_after_s`` (``FAILOVER_PROBE_INTERVAL_S``: the service itself tries an
    unavailable database again at least that often)."""
    unavailable = functools.partial(_unavailable, retry_after_s=max(1, math.ceil(retry_after_s)))
    return {**_EXCEPTION_MAP, BackendUnavailableError: unavailable}


class WriteAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """A write journaled for the primary whose result is not known yet (202)."""

    evaluation_id: str
    journal_entry: str
    detail: str


def accepted_handler(_: Request[Any, Any, Any], exc: WriteAcceptedError) -> Response[Any]:
    """202: durable in the failover journal, applied to the record at replay."""
    body = WriteAccepted(
        evaluation_id=exc.evaluation_id, journal_entry=exc.entry_id, detail=str(exc)
    )
    return Response(body, status_code=HTTP_202_ACCEPTED)


ACCEPTED_RESPONSE = {
    HTTP_202_ACCEPTED: ResponseSpec(
        data_container=WriteAccepted,
        description="Journaled while the primary storage is unavailable; the record, created "
        "before the outage, is not known here, so the new state is not shown",
        generate_examples=False,
    )
}


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The last resort: log with the trace, answer without leaking internals."""
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal server error",
        "an unexpected error occurred",
        "internal",
    ).to_response(request)


class FieldProblem(msgspec.Struct, kw_only=True):
    field: str
    message: str


class ProblemBody(msgspec.Struct, kw_only=True):
    """An error answer (RFC 9457); some kinds add members, such as ``field``."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | msgspec.UnsetType = msgspec.UNSET


_MEANINGS = {
    400: "Malformed request (JSON or header)",
    401: "No known API key",
    403: "The key's scope is too small",
    404: "No such evaluation (or backend)",
    409: "Conflict with the stored state",
    410: "The cursor is older than the change feed keeps; `latest` says where to go on",
    412: "If-Match names an older version",
    413: "Body larger than the limit",
    415: "Unsupported Content-Type",
    416: "Range outside the content",
    422: "Invalid request; `errors[].field` names the field",
    503: "A storage backend is unavailable; nothing was stored. `Retry-After` says when to "
    "try again; `cause` names a database connection refused for want of a free slot "
    "(`connection-slots`) or of a free pooled connection (`connection-pool`), or a write "
    "the database ended to let a concurrent one through (`write-conflict`)",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """The OpenAPI entries of a guarded route's problem+json answers: 401, 403 and ``statuses``."""
    return {
        status: ResponseSpec(
            data_container=ProblemBody,
            media_type=PROBLEM_MEDIA_TYPE,
            description=_MEANINGS[status],
            generate_examples=False,
        )
        for status in (401, 403, *statuses)
    }
