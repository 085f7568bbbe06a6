"""The evaluations whose texts hold something, a page at a time, with where each matched."""

from dataclasses import dataclass

from application.errors import InvalidRequestError, StatementTimeoutError
from application.ports.evaluation_pages import EvaluationPages
from application.ports.search_texts import SearchTexts
from application.queries import EvaluationPage, EvaluationQuery, ProjectedPage
from application.search import SearchAvailability, TextMatch, TextSearch, matches_in
from application.use_cases.list_evaluations import check_list, projection_of
from domain.identifiers import EvaluationId
from domain.limits import InputLimits


@dataclass(frozen=True, slots=True)
class SearchPage:
    """A page of hits (whole records, or the fields asked for) and each hit's matches."""

    page: EvaluationPage | ProjectedPage
    matches: dict[str, list[TextMatch]]


@dataclass(frozen=True, slots=True)
class SearchEvaluations:
    pages: EvaluationPages
    texts: SearchTexts
    limits: InputLimits
    availability: SearchAvailability

    async def execute(self, query: EvaluationQuery, fields: frozenset[str] | None) -> SearchPage:
        """The page ``query`` (whose filter holds the search) selects; ``fields`` projects it.

        A search the database gives up on at its statement timeout is refused (422, naming
        the search's parameter), never a 5xx: a longer text or a filter narrows it.
        """
        search = query.filter.search
        assert search is not None, "a search query holds its search"
        if self.availability.sealed:
            raise InvalidRequestError(
                "q_regex" if search.regex else "q",
                "text search is off: with ENCRYPTION=on the texts are sealed in the "
                "database, where no search can read them",
            )
        check_list(query, self.limits)
        try:
            page: EvaluationPage | ProjectedPage
            if fields is None:
                page = await self.pages.list(query)
                ids = [item.id for item in page.items]
            else:
                page = await self.pages.list_fields(query, projection_of(fields))
                ids = [EvaluationId(item["id"]) for item in page.items]
            found = matches_in(search, await self.texts.texts(ids, search))
        except StatementTimeoutError:
            raise _too_broad(search) from None
        return SearchPage(page=page, matches=found)


def _too_broad(search: TextSearch) -> InvalidRequestError:
    field = "q_regex" if search.regex else "q"
    return InvalidRequestError(
        field,
        "the search took longer than the database allows a statement "
        "(DB_STATEMENT_TIMEOUT_MS): make it more selective (a longer text, fewer fields "
        "with `in`, or a filter such as status or created_after)",
    )
