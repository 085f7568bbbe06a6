"""Every failure leaves as RFC 9457 problem+json, naming the field where there is one."""

import logging
import re
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.status_codes import (
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_412_PRECONDITION_FAILED,
    HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from application.errors import (
    BackendUnavailableError,
    BlobMissingError,
    DuplicateEvaluationError,
    EvaluationNotFoundError,
    InvalidRequestError,
    PreconditionFailedError,
    UnknownBackendError,
    VersionConflictError,
)
from domain.errors import (
    IllegalTransitionError,
    InvalidIdentifierError,
    InvalidTextError,
    UnsatisfiableRangeError,
)

logger = logging.getLogger("storage_service.http")
PROBLEM_BASE = "https://crucible.dev/problems/"


def problem(
    status: int, title: str, detail: str, kind: str, **extra: Any
) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=status,
        title=title,
        detail=detail,
        type_=PROBLEM_BASE + kind,
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


def _illegal(exc: IllegalTransitionError) -> ProblemDetailsException:
    return problem(
        HTTP_409_CONFLICT,
        "Illegal status change",
        str(exc),
        "illegal-transition",
        field="status",
        current_status=exc.current,
        requested_status=exc.requested,
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


def _unknown_backend(exc: UnknownBackendError) -> ProblemDetailsException:
    return problem(
        HTTP_404_NOT_FOUND, "Unknown backend", str(exc), "unknown-backend", known=exc.known
    )


def _unavailable(exc: BackendUnavailableError) -> ProblemDetailsException:
    logger.error("backend unavailable: %s", exc)
    return problem(
        HTTP_503_SERVICE_UNAVAILABLE,
        "Storage unavailable",
        f"the {exc.backend} backend is unavailable; nothing was stored",
        "unavailable",
        backend=exc.backend,
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


def _http(exc: HTTPException) -> ProblemDetailsException:
    return problem(exc.status_code, str(exc.detail), str(exc.detail), "http-error")


EXCEPTION_MAP: dict[type[Exception], Callable[[Any], ProblemDetailsException]] = {
    EvaluationNotFoundError: _not_found,
    DuplicateEvaluationError: _duplicate,
    IllegalTransitionError: _illegal,
    VersionConflictError: _conflict,
    PreconditionFailedError: _precondition,
    InvalidIdentifierError: _bad_id,
    InvalidTextError: _bad_text,
    InvalidRequestError: _bad_request,
    UnknownBackendError: _unknown_backend,
    BackendUnavailableError: _unavailable,
    BlobMissingError: _blob_missing,
    UnsatisfiableRangeError: _unsatisfiable,
    ValidationException: _validation,
    HTTPException: _http,
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
