from dataclasses import dataclass

from application.errors import InvalidRequestError
from application.ports.evaluation_pages import EvaluationPages
from application.queries import (
    EvaluationPage,
    EvaluationQuery,
    ProjectedPage,
    check_filter_text,
    check_projection,
)
from domain.limits import InputLimits


def check_list(query: EvaluationQuery, limits: InputLimits) -> None:
    """Refuse a page no store should be asked for (each refusal names its parameter)."""
    check_filter_text(query.filter)
    if query.limit > limits.list_limit:
        raise InvalidRequestError("limit", f"must be at most {limits.list_limit} (MAX_LIST_LIMIT)")
    if query.offset > limits.list_offset:
        # A deep offset reads and throws away every row it skips (169 ms at offset 500,000
        # of 1M records); a keyset cursor reads only its page, however deep.
        raise InvalidRequestError(
            "offset",
            f"must be at most {limits.list_offset} (MAX_LIST_OFFSET); page deeper with "
            "`cursor`: pass each page's `next_cursor` back as `cursor`",
        )


@dataclass(frozen=True, slots=True)
class ListEvaluations:
    pages: EvaluationPages
    limits: InputLimits

    async def execute(self, query: EvaluationQuery) -> EvaluationPage:
        check_list(query, self.limits)
        return await self.pages.list(query)


@dataclass(frozen=True, slots=True)
class ListEvaluationFields:
    """The page ``ListEvaluations`` gives, reading only ``fields`` (plus ``id``, ``version``)."""

    pages: EvaluationPages
    limits: InputLimits

    async def execute(self, query: EvaluationQuery, fields: frozenset[str]) -> ProjectedPage:
        check_list(query, self.limits)
        return await self.pages.list_fields(query, projection_of(fields))


def projection_of(fields: frozenset[str]) -> frozenset[str]:
    """The columns a ``fields=`` list reads (422 naming ``fields`` for an unknown one)."""
    try:
        return check_projection(fields)
    except ValueError as exc:
        raise InvalidRequestError("fields", str(exc)) from None
