"""Reading the change feed: a page after a cursor, and where a new reader starts."""

from dataclasses import dataclass
from datetime import timedelta

import msgspec

from application.errors import ChangeCursorExpiredError
from application.ports.change_feed import ChangeFeed, ChangePage, ChangeQuery
from application.ports.clock import Clock
from domain.changes import START, ChangeCursor
from domain.evaluation import ensure_storable_text


class FeedRetention(msgspec.Struct, frozen=True):
    """How far back a cursor still resumes (``CHANGES_RETENTION_S``)."""

    seconds: int


@dataclass(frozen=True, slots=True)
class ReadChanges:
    """A page of the feed; a cursor past the retention is refused, never silently skipped.

    The audit trail the feed reads keeps every entry, so a cursor older than the
    retention could still be served; it is refused all the same, so that a reader learns
    it fell behind (and resyncs) while the feed's promise stays one a pruned log keeps.
    """

    feed: ChangeFeed
    clock: Clock
    retention: FeedRetention

    async def execute(self, query: ChangeQuery) -> ChangePage:
        if query.evaluation_id is not None:
            ensure_storable_text("evaluation_id", query.evaluation_id)
        if query.after is not None and query.after != START:
            await self.check(query.after)
        else:
            since = self.clock.now() - timedelta(seconds=self.retention.seconds)
            query = msgspec.structs.replace(query, since=since)
        return await self.feed.read(query)

    async def check(self, cursor: ChangeCursor, field: str = "after") -> None:
        """Refuse ``cursor`` (410) if the feed does not know it or it is past the retention."""
        at = await self.feed.recorded_at(cursor)
        oldest = self.clock.now() - timedelta(seconds=self.retention.seconds)
        if at is None or at < oldest:
            latest = await self.feed.latest()
            raise ChangeCursorExpiredError(
                field, self.retention.seconds, None if latest is None else latest.token()
            )

    async def latest(self) -> ChangeCursor:
        """Where a reader that wants only what comes next starts."""
        return await self.feed.latest() or START
