"""Where a search hit matched, as ``_matches`` on each listed evaluation."""

import msgspec

from application.search import SearchField


class MatchBody(msgspec.Struct, kw_only=True):
    """One field of a hit that holds the text (its first match there).

    ``offset``: UTF-8 bytes into the field (the code, the whole output or error, which a
    ``Range: bytes=<offset>-`` reads on from, the log, which ``GET …/logs?offset=`` reads
    on from, or the message of ``event_id``). ``highlight``: the match's span in
    ``excerpt``, in characters.
    """

    field: SearchField
    offset: int
    excerpt: str
    highlight: tuple[int, int]
    event_id: str | None = None
