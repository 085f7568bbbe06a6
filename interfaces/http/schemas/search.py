"""Where a search hit matched, as ``_matches`` on each listed evaluation."""

import msgspec

from application.search import SearchField, TextMatch


class MatchBody(msgspec.Struct, kw_only=True):
    """One field of a hit that holds the text (its first match there).

    ``offset``: characters into the field's text; bytes into the log for ``logs`` (read
    on from there with ``GET /evaluations/{id}/logs?offset=``); characters into the
    message of ``event_id`` for ``events``. ``highlight``: the match's span in ``excerpt``.
    """

    field: SearchField
    offset: int
    excerpt: str
    highlight: tuple[int, int]
    event_id: str | None = None

    @classmethod
    def of(cls, match: TextMatch) -> "MatchBody":
        return cls(
            field=match.field,
            offset=match.offset,
            excerpt=match.excerpt,
            highlight=match.highlight,
            event_id=match.event_id,
        )
