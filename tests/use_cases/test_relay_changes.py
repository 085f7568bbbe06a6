"""RelayChanges with a fake feed and sink: where it resumes, what it passes over, and
how it follows another relay that published first."""

from collections.abc import Sequence
from datetime import UTC, datetime

import anyio
import pytest

from application.ports.change_feed import ChangePage, ChangeQuery
from application.ports.change_sink import ChangeSinkMovedError, SinkPosition
from application.use_cases.changes import FeedRetention
from application.use_cases.relay_changes import RelayChanges, RelayProgress
from domain.changes import Change, ChangeCursor, ChangeKind
from tests.use_cases.conftest import FixedClock

pytestmark = pytest.mark.anyio

AT = datetime(2024, 1, 1, tzinfo=UTC)


def _change(sequence: int) -> Change:
    return Change(
        cursor=ChangeCursor(0, sequence),
        kind=ChangeKind.CREATED,
        evaluation_id=f"e{sequence}",
        at=AT,
    )


class FakeFeed:
    """Entries 1..``last``; those in ``gaps`` are no change (nothing about an evaluation)."""

    def __init__(self, last: int, gaps: frozenset[int] = frozenset()) -> None:
        self.last = last
        self.gaps = gaps
        self.queries: list[ChangeQuery] = []

    async def read(self, query: ChangeQuery) -> ChangePage:
        self.queries.append(query)
        start = 0 if query.after is None else query.after.sequence
        read = list(range(start + 1, min(start + query.limit, self.last) + 1))
        return ChangePage(
            changes=[_change(n) for n in read if n not in self.gaps],
            reached=ChangeCursor(0, read[-1]) if read else None,
            full=len(read) == query.limit,
        )


class FakeSink:
    """Stores changes in order; ``foreign`` are stored by "another relay" before the first publish."""

    def __init__(self, held: Sequence[Change] = (), foreign: Sequence[Change] = ()) -> None:
        self.stored = list(held)
        self.foreign = list(foreign)

    async def position(self) -> SinkPosition:
        cursor = self.stored[-1].cursor if self.stored else None
        return SinkPosition(cursor=cursor, mark=len(self.stored))

    async def publish(self, changes: Sequence[Change], after: SinkPosition) -> SinkPosition:
        if self.foreign:
            self.stored += self.foreign
            self.foreign = []
        if after.mark != len(self.stored):
            raise ChangeSinkMovedError("moved")
        self.stored += changes
        return await self.position()


async def _relay_until(feed: FakeFeed, sink: FakeSink, count: int) -> RelayProgress:
    stopping = anyio.Event()

    def report(progress: RelayProgress) -> None:
        if len(sink.stored) >= count:
            stopping.set()

    use_case = RelayChanges(feed.read, sink, FixedClock(), FeedRetention(3600), poll_s=0.01, page=4)
    with anyio.fail_after(5):
        return await use_case.execute(stopping, report)


async def test_an_empty_destination_gets_the_feed_from_the_start_of_its_retention() -> None:
    feed, sink = FakeFeed(10), FakeSink()

    progress = await _relay_until(feed, sink, 10)

    assert [c.cursor.sequence for c in sink.stored] == list(range(1, 11))
    assert progress == RelayProgress(relayed=10, cursor=ChangeCursor(0, 10))
    assert feed.queries[0].after is None
    assert feed.queries[0].since is not None


async def test_it_resumes_after_the_destinations_last_change() -> None:
    feed, sink = FakeFeed(10), FakeSink(held=[_change(n) for n in range(1, 7)])

    await _relay_until(feed, sink, 10)

    assert [c.cursor.sequence for c in sink.stored] == list(range(1, 11))
    assert feed.queries[0].after == ChangeCursor(0, 6)


async def test_a_full_page_of_entries_that_are_no_change_is_passed_over() -> None:
    feed, sink = FakeFeed(12, gaps=frozenset(range(2, 10))), FakeSink()

    await _relay_until(feed, sink, 4)

    assert [c.cursor.sequence for c in sink.stored] == [1, 10, 11, 12]


async def test_after_another_relay_published_it_goes_on_after_that_relays_last_change() -> None:
    feed = FakeFeed(10)
    sink = FakeSink(foreign=[_change(n) for n in range(1, 6)])

    await _relay_until(feed, sink, 10)

    assert [c.cursor.sequence for c in sink.stored] == list(range(1, 11))
