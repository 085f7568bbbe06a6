"""Failures under ``/explorer`` answer pages in the explorer's frame, never problem JSON.

A person follows explorer links in a browser: a missing record or a malformed id is a
page saying so, with the menu to go on from, not a JSON document.
"""

from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_400_BAD_REQUEST, HTTP_401_UNAUTHORIZED, HTTP_404_NOT_FOUND
from litestar.types import ExceptionHandlersMap

from application.errors import EvaluationNotFoundError, InvalidRequestError
from domain.errors import InvalidIdentifierError, InvalidTextError

NOT_FOUND = "There is nothing stored under this address."


def error_page(request: Request[Any, Any, State], exc: Exception) -> Template:
    status = HTTP_404_NOT_FOUND
    if isinstance(exc, InvalidIdentifierError | InvalidRequestError | InvalidTextError):
        status = HTTP_400_BAD_REQUEST
    elif isinstance(exc, HTTPException):
        status = exc.status_code
    message = NOT_FOUND if status == HTTP_404_NOT_FOUND else str(exc)
    return Template(
        template_name="error.html",
        context={"status": status, "message": message, "path": request.url.path},
        status_code=status,
    )


def problem_page(request: Request[Any, Any, State], exc: ProblemDetailsException) -> Response[Any]:
    """No key yet: to the sign-in page, coming back here after; other problems: a page."""
    if exc.status_code == HTTP_401_UNAUTHORIZED:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/explorer/login?{urlencode({'next': target})}")
    return error_page(request, exc)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ProblemDetailsException: problem_page,
    HTTPException: error_page,
    EvaluationNotFoundError: error_page,
    InvalidIdentifierError: error_page,
    InvalidTextError: error_page,
    InvalidRequestError: error_page,
}
