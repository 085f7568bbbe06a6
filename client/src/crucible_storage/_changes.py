"""The plans of the change feed: a page, every page, and the changes as they commit."""

from collections.abc import Iterable
from typing import Never

import msgspec

from crucible_storage._build import query, read
from crucible_storage._follow import follow_stream
from crucible_storage._plan import Emit, Params, Plan, one
from crucible_storage._sse import ServerEvent
from crucible_storage.models import Change, ChangePage

Kinds = str | Iterable[str] | None
"""One kind of change, several, or every kind (``None``)."""


def _params(after: str | None, evaluation_id: str | None, kind: Kinds, limit: int | None) -> Params:
    params = query(after=after, evaluation_id=evaluation_id, limit=limit)
    kinds = [kind] if isinstance(kind, str) else list(kind or ())
    return {**params, "kind": kinds} if kinds else params


def list_changes(
    after: str | None = None,
    *,
    evaluation_id: str | None = None,
    kind: Kinds = None,
    limit: int | None = None,
) -> Plan[Never, ChangePage]:
    """One page in commit order after ``after``; without it, from the oldest change kept.

    A cursor older than the feed keeps raises ``CursorExpired``.
    """
    params = _params(after, evaluation_id, kind, limit)
    return (yield from one(read("/changes", ChangePage, params)))


def iterate_changes(
    after: str | None = None,
    *,
    evaluation_id: str | None = None,
    kind: Kinds = None,
    page_size: int = 100,
) -> Plan[Change, None]:
    """Every change after ``after`` up to the end of the feed for now, page by page."""
    while True:
        params = _params(after, evaluation_id, kind, page_size)
        page: ChangePage = yield read("/changes", ChangePage, params)
        for change in page.items:
            yield Emit(change)
        if not page.more or page.next_cursor is None:
            return
        after = page.next_cursor


_change = msgspec.json.Decoder(Change)


def _decode_change(event: ServerEvent) -> Change | None:
    return _change.decode(event.data) if event.event == "message" else None


def follow_changes(
    after: str | None = None,
    *,
    evaluation_id: str | None = None,
    kind: Kinds = None,
) -> Plan[Change, None]:
    """Each change as it commits, for as long as the caller reads: after ``after``, else
    from the next one. A dropped stream is reopened after its last change, so none is
    skipped or repeated (until the first change arrives, a follow without ``after`` has
    no cursor to resume from and reopens at the feed's end)."""
    params = _params(after, evaluation_id, kind, None)
    return (yield from follow_stream("/changes/stream", params, _decode_change))
