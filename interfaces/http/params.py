"""Parsing of path and query values shared by the controllers (headers: see ``conditional``)."""

import base64
import binascii
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import msgspec
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, Parameter, PathParameter, QueryParameter

from application.queries import EvaluationFilter, ListCursor
from application.search import MAX_PATTERN, MIN_TEXT, text_search
from domain.identifiers import EvaluationId, parse_evaluation_id
from domain.status import EvaluationStatus
from interfaces.http.errors import invalid_field

EvalIdPath = Annotated[
    str,
    PathParameter(description="Evaluation id: 1-255 of letters, digits, '_' and '-'"),
]

_cursor_encoder = msgspec.json.Encoder()
_cursor_decoder = msgspec.json.Decoder(ListCursor)


def evaluation_id(raw: str) -> EvaluationId:
    """Validate a path id (422 naming ``id`` when it breaks the rule)."""
    return parse_evaluation_id(raw)


def encode_cursor(cursor: ListCursor | None) -> str | None:
    if cursor is None:
        return None
    return base64.urlsafe_b64encode(_cursor_encoder.encode(cursor)).decode("ascii").rstrip("=")


def decode_cursor(raw: str) -> ListCursor:
    try:
        padded = raw + "=" * (-len(raw) % 4)
        cursor = _cursor_decoder.decode(base64.urlsafe_b64decode(padded.encode("ascii")))
        parse_evaluation_id(cursor.id)
    except (binascii.Error, UnicodeEncodeError, msgspec.DecodeError, ValueError):
        raise invalid_field("cursor", "is not a cursor this service issued") from None
    return cursor


FIELDS_DESCRIPTION = (
    "Comma-separated field names to return (e.g. `status,created_at,completed_at`); "
    "`id` is always included. Unset: the whole record"
)


def parse_fields(raw: str, known: Iterable[str]) -> frozenset[str]:
    """The API field names of a ``fields=`` value (422 naming ``fields`` otherwise)."""
    names = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise invalid_field("fields", "must name at least one field")
    unknown = names - frozenset(known)
    if unknown:
        raise invalid_field(
            "fields",
            f"unknown field(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}",
        )
    return names


def evaluation_filter(
    status: FromQuery[EvaluationStatus | None] = None,
    language: Annotated[str | None, Parameter(max_length=50)] = None,
    created_after: FromQuery[datetime | None] = None,
    created_before: FromQuery[datetime | None] = None,
    id_prefix: Annotated[str | None, Parameter(max_length=255)] = None,
    q: Annotated[
        str | None,
        Parameter(
            max_length=MAX_PATTERN,
            description="Only evaluations whose code, output, error, log or event messages "
            f"contain this text (case-insensitive, at least {MIN_TEXT} characters)",
        ),
    ] = None,
    q_regex: Annotated[
        str | None,
        Parameter(
            max_length=MAX_PATTERN,
            description="Only evaluations where this RE2 pattern matches (case-sensitive; "
            "`(?i)` for not); no lookarounds or backreferences",
        ),
    ] = None,
    search_in: Annotated[
        str | None,
        QueryParameter(
            name="in",
            max_length=64,
            description="Where `q`/`q_regex` look, comma-separated: "
            "code, output, error, logs, events (default: all)",
        ),
    ] = None,
) -> EvaluationFilter:
    """The list filter as query parameters, one definition for every route that filters."""
    return EvaluationFilter(
        status=status,
        language=language,
        created_after=created_after,
        created_before=created_before,
        id_prefix=id_prefix,
        search=text_search(q, q_regex, search_in),
    )


FILTER_DEPENDENCY = {"criteria": Provide(evaluation_filter, sync_to_thread=False)}
# A handler's ``criteria`` argument, injected by name from ``FILTER_DEPENDENCY``.
Criteria = NamedDependency[EvaluationFilter]
