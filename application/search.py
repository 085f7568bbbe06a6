"""Text search over evaluations: what may be asked, and where a hit matched.

Every store selects the evaluations whose searched text contains the text (``q``,
case-insensitive) or matches the pattern (``q_regex``); this module checks the request
and finds each match's place and excerpt in the texts the store hands back. Patterns are
RE2's: linear time whatever the input, so a hostile one cannot stall a worker (PostgreSQL
runs its own engine, bounded by the statement timeout). Lookarounds and backreferences,
which RE2 lacks, are refused rather than read differently by two engines.
"""

import functools
from dataclasses import dataclass
from enum import StrEnum

import msgspec
import re2

from application.errors import InvalidRequestError
from domain.evaluation import Evaluation, ensure_storable_text

MIN_TEXT = 3  # the indexes work on trigrams: a shorter text would read every row
MAX_PATTERN = 256
EXCERPT = 40  # characters kept on each side of a match


class SearchField(StrEnum):
    """Where a search looks: the record's texts, its events' messages, its log."""

    CODE = "code"
    OUTPUT = "output"
    ERROR = "error"
    LOGS = "logs"
    EVENTS = "events"


RECORD_FIELDS = (SearchField.CODE, SearchField.OUTPUT, SearchField.ERROR)


class TextSearch(msgspec.Struct, frozen=True):
    """A checked search: ``pattern`` is literal text unless ``regex``."""

    pattern: str
    regex: bool = False
    fields: frozenset[SearchField] = frozenset(SearchField)

    def like(self) -> str:
        """The text as an ``ILIKE``/``LIKE`` pattern (``\\`` escapes)."""
        escaped = self.pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"%{escaped}%"

    def looks_in(self, field: SearchField) -> bool:
        return field in self.fields

    def find(self, text: str | None) -> tuple[int, int] | None:
        """The first match in ``text`` as ``(start, end)`` character offsets."""
        if not text:
            return None
        found = _compiled(self).search(text)
        return None if found is None else found.span()


class TextMatch(msgspec.Struct, frozen=True, kw_only=True):
    """Where a hit matched: the field, the match's place, and the text around it.

    ``offset`` counts UTF-8 bytes into the field: the code, the whole output or error
    (``Range: bytes=<offset>-`` reads from there), the log (``GET …/logs?offset=``), or the
    message of ``event_id``. ``highlight`` is the match's span in ``excerpt``, in characters.
    """

    field: SearchField
    offset: int
    excerpt: str
    highlight: tuple[int, int]
    event_id: str | None = None


class SearchText(msgspec.Struct, frozen=True, kw_only=True):
    """A text a store found for a hit: a field of it, and the byte of the field it begins
    at (a log piece's offset in the log, a payload tail's in the payload; else 0)."""

    evaluation_id: str
    field: SearchField
    text: str
    start: int = 0
    event_id: str | None = None


def text_search(q: str | None, q_regex: str | None, where: str | None) -> TextSearch | None:
    """The search asked by ``q``/``q_regex`` and ``in``; ``None`` when neither is given."""
    if q is None and q_regex is None:
        if where is not None:
            raise InvalidRequestError("in", "goes with q or q_regex")
        return None
    if q is not None and q_regex is not None:
        raise InvalidRequestError("q_regex", "give q (text) or q_regex (pattern), not both")
    fields = _fields(where)
    if q is not None:
        ensure_storable_text("q", q)
        if len(q.strip()) < MIN_TEXT:
            raise InvalidRequestError(
                "q", f"must hold at least {MIN_TEXT} characters (the index reads trigrams)"
            )
        if len(q) > MAX_PATTERN:
            raise InvalidRequestError("q", f"must be at most {MAX_PATTERN} characters")
        return TextSearch(q, regex=False, fields=fields)
    assert q_regex is not None
    ensure_storable_text("q_regex", q_regex)
    if not q_regex or len(q_regex) > MAX_PATTERN:
        raise InvalidRequestError("q_regex", f"must hold 1 to {MAX_PATTERN} characters")
    search = TextSearch(q_regex, regex=True, fields=fields)
    try:
        _compiled(search)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise InvalidRequestError("q_regex", f"is not a pattern RE2 accepts: {reason}") from None
    return search


def _fields(where: str | None) -> frozenset[SearchField]:
    if where is None:
        return frozenset(SearchField)
    names = {name.strip() for name in where.split(",") if name.strip()}
    known = {field.value for field in SearchField}
    if not names or not names <= known:
        raise InvalidRequestError(
            "in", f"must name some of {', '.join(field.value for field in SearchField)}"
        )
    return frozenset(SearchField(name) for name in names)


@functools.lru_cache(maxsize=256)
def _compiled(search: TextSearch) -> "re2._Regexp":
    """``search`` compiled once (a page of hits, or SQLite's ``REGEXP`` per row, reuse it)."""
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 8 << 20  # a pattern that needs more is refused, not run
    if not search.regex:
        options.literal = True
        options.case_sensitive = False
    return re2.compile(search.pattern, options)


def matches_in(search: TextSearch, texts: list[SearchText]) -> dict[str, list[TextMatch]]:
    """The first match of each field of each hit (of each event), with its excerpt."""
    found: dict[str, list[TextMatch]] = {}
    seen: set[tuple[str, SearchField, str | None]] = set()
    for item in texts:
        key = (item.evaluation_id, item.field, item.event_id)
        if key in seen:
            continue
        span = search.find(item.text)
        if span is None:
            continue
        seen.add(key)
        start, end = span
        left = max(0, start - EXCERPT)
        excerpt = item.text[left : end + EXCERPT]
        offset = item.start + len(item.text[:start].encode())
        found.setdefault(item.evaluation_id, []).append(
            TextMatch(
                field=item.field,
                offset=offset,
                excerpt=excerpt,
                highlight=(start - left, end - left),
                event_id=item.event_id,
            )
        )
    return found


def record_texts(evaluation: Evaluation, search: TextSearch) -> list[SearchText]:
    """The record's own searched texts: its code, and each payload's text and tail."""
    owner = evaluation.id
    found: list[SearchText] = []
    if search.looks_in(SearchField.CODE) and evaluation.code:
        found.append(SearchText(evaluation_id=owner, field=SearchField.CODE, text=evaluation.code))
    payloads = ((SearchField.OUTPUT, evaluation.output), (SearchField.ERROR, evaluation.error))
    for field, payload in payloads:
        if payload is None or not search.looks_in(field):
            continue
        if payload.text:
            found.append(SearchText(evaluation_id=owner, field=field, text=payload.text))
        if payload.tail:
            start = payload.size - len(payload.tail.encode())
            found.append(
                SearchText(evaluation_id=owner, field=field, text=payload.tail, start=start)
            )
    return found


@dataclass(frozen=True, slots=True)
class SearchAvailability:
    """Whether the stored texts can be searched: not when they are sealed (``ENCRYPTION=on``:
    the database holds only ciphertext, which no pattern matches)."""

    sealed: bool = False
