"""Relaying the change feed to an ordered destination (JetStream), at least once.

The relay keeps no state of its own: where it stands is the destination's last change,
so a relay restarted (or a second one beside it) goes on from what was acknowledged.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import anyio
import msgspec

from application.ports.change_feed import ChangePage, ChangeQuery
from application.ports.change_sink import ChangeSink, ChangeSinkMovedError
from application.ports.clock import Clock
from application.use_cases.changes import FeedRetention
from domain.changes import ChangeCursor

# A page of the feed, read in a scope of its own: the relay holds no connection between pages.
ReadPage = Callable[[ChangeQuery], Awaitable[ChangePage]]

logger = logging.getLogger("storage_service.relay")


class RelayProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Changes this run handed over (acknowledged), and the destination's last cursor."""

    relayed: int = 0
    cursor: ChangeCursor | None = None


def _ignore(_: RelayProgress) -> None:
    return None


@dataclass(frozen=True, slots=True)
class RelayChanges:
    """Publish the feed page by page after the destination's last change, until stopped.

    A destination without changes gets the feed from the start of its retention, as any
    new reader. A cursor older than the retention still resumes: the audit trail keeps
    every entry, and a relay that skipped some would leave a hole no consumer can see.
    """

    read: ReadPage
    sink: ChangeSink
    clock: Clock
    retention: FeedRetention
    poll_s: float = 0.1
    page: int = 500

    async def execute(
        self, stopping: anyio.Event, report: Callable[[RelayProgress], None] = _ignore
    ) -> RelayProgress:
        """Relay until ``stopping`` is set; it is heard between pages and while idle."""
        position = await self.sink.position()
        after = position.cursor
        progress = RelayProgress(cursor=after)
        while not stopping.is_set():
            page = await self.read(self._query(after))
            if page.changes:
                try:
                    position = await self.sink.publish(page.changes, position)
                except ChangeSinkMovedError:
                    # Another relay stored changes meanwhile: go on after its last one.
                    position = await self.sink.position()
                    after = position.cursor
                    logger.debug("another relay published too; going on after its last change")
                    continue
                progress = RelayProgress(
                    relayed=progress.relayed + len(page.changes), cursor=position.cursor
                )
                report(progress)
            # Entries that are no change (nothing about an evaluation) are passed over too.
            after = page.reached or after
            if not page.full:
                with anyio.move_on_after(self.poll_s):
                    await stopping.wait()
        return progress

    def _query(self, after: ChangeCursor | None) -> ChangeQuery:
        if after is not None:
            return ChangeQuery(after=after, limit=self.page)
        since = self.clock.now() - timedelta(seconds=self.retention.seconds)
        return ChangeQuery(since=since, limit=self.page)
