"""Following the feed through the hub: from any cursor, nothing skipped, nothing twice.

The feed here is the memory adapter over a memory audit trail that a writer task keeps
appending to; the hub's buffer is kept small so that streams start behind it, catch up
from the feed and hand over to the buffer while changes keep coming.
"""

from datetime import UTC, datetime

import anyio
import pytest

from application.ports.change_feed import ChangePage, ChangeQuery
from application.services.change_hub import ChangeHub
from application.use_cases.follow import follow_changes
from domain.audit import AuditAction, AuditEntry
from domain.changes import START, Change, ChangeCursor, ChangeKind
from infrastructure.memory.audit import MemoryAuditLog
from infrastructure.memory.changes import MemoryChangeFeed

pytestmark = pytest.mark.anyio
AT = datetime(2024, 7, 1, tzinfo=UTC)


class Feed:
    """The memory feed, counting its reads."""

    def __init__(self) -> None:
        self.log = MemoryAuditLog()
        self.feed = MemoryChangeFeed(self.log)
        self.reads = 0

    async def read(self, query: ChangeQuery) -> ChangePage:
        self.reads += 1
        return await self.feed.read(query)

    async def latest(self) -> ChangeCursor:
        return await self.feed.latest() or START

    async def write(
        self, n: int, evaluation: str = "e", action: AuditAction = AuditAction.CREATE
    ) -> None:
        await self.log.append(
            AuditEntry(at=AT, actor="t", action=action, evaluation_id=f"{evaluation}{n}")
        )


async def _collect(hub: ChangeHub, feed: Feed, query: ChangeQuery, count: int) -> list[Change]:
    seen: list[Change] = []
    with hub.stream(), anyio.fail_after(20):
        async for change in follow_changes(hub, feed.read, query, keepalive_s=0.05):
            if change is not None:
                seen.append(change)
            if len(seen) == count:
                break
    return seen


async def test_a_stream_behind_a_small_buffer_catches_up_and_hands_over_without_gaps() -> None:
    feed = Feed()
    for n in range(1200):  # far more than the buffer holds, and than one page
        await feed.write(n)
    hub = ChangeHub(feed.read, feed.latest, poll_s=0.01, capacity=50)

    async def keep_writing() -> None:
        for n in range(1200, 1500):
            await feed.write(n)
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as group:
        group.start_soon(hub.run, stopping := anyio.Event())
        group.start_soon(keep_writing)
        seen = await _collect(hub, feed, ChangeQuery(after=START), 1500)
        stopping.set()

    assert [c.evaluation_id for c in seen] == [f"e{n}" for n in range(1500)]


async def test_a_filter_that_matches_nothing_for_long_does_not_spin() -> None:
    feed = Feed()
    for n in range(600):
        await feed.write(n, evaluation="other")
    await feed.write(0, evaluation="wanted")
    hub = ChangeHub(feed.read, feed.latest, poll_s=0.02, capacity=10)
    query = ChangeQuery(after=START, evaluation_id="wanted0")

    async with anyio.create_task_group() as group:
        group.start_soon(hub.run, stopping := anyio.Event())
        (found,) = await _collect(hub, feed, query, 1)
        reads_then = feed.reads
        await anyio.sleep(0.3)  # nothing new: the stream waits, the hub polls
        stopping.set()

    assert found.evaluation_id == "wanted0"
    assert feed.reads - reads_then < 40  # the hub's polls, not a stream reading in a loop


async def test_an_idle_hub_reads_nothing_and_one_hub_serves_many_streams() -> None:
    feed = Feed()
    hub = ChangeHub(feed.read, feed.latest, poll_s=0.01)

    async with anyio.create_task_group() as group:
        group.start_soon(hub.run, stopping := anyio.Event())
        await anyio.sleep(0.1)
        assert feed.reads == 0  # no stream: no query at all

        results: list[list[Change]] = []

        async def stream() -> None:
            results.append(await _collect(hub, feed, ChangeQuery(after=START), 20))

        async with anyio.create_task_group() as streams:
            for _ in range(50):
                streams.start_soon(stream)
            await anyio.sleep(0.05)
            for n in range(20):
                await feed.write(n, action=AuditAction.APPEND_LOG)
        stopping.set()

    assert len(results) == 50
    assert all([c.kind for c in r] == [ChangeKind.LOG_APPENDED] * 20 for r in results)
    assert (
        feed.reads < 200
    )  # not a read per stream and change (1,000): the hub's buffer served them
    assert hub.streams == 0


async def test_a_change_that_lands_before_an_idle_hub_starts_is_not_left_waiting() -> None:
    feed = Feed()
    latest_calls: list[ChangeCursor] = []

    async def latest_after_a_write() -> ChangeCursor:
        await feed.write(1)  # commits between the stream's first read and the hub's start
        latest_calls.append(found := await feed.latest())
        return found

    hub = ChangeHub(feed.read, latest_after_a_write, poll_s=0.01)
    async with anyio.create_task_group() as group:
        group.start_soon(hub.run, stopping := anyio.Event())
        seen: list[Change] = []
        with hub.stream(), anyio.fail_after(2):  # far less than the keepalive below
            async for change in follow_changes(hub, feed.read, ChangeQuery(after=START), 30):
                if change is not None:
                    seen.append(change)
                    break
        stopping.set()

    assert [c.evaluation_id for c in seen] == ["e1"]
    assert latest_calls == [seen[0].cursor]


async def test_an_idle_hub_stops_when_asked_not_at_its_next_poll() -> None:
    """Its idle wait is ten polls (here 10,000 s): a stop must end it, not the clock."""
    hub = ChangeHub(Feed().read, Feed().latest, poll_s=1000)
    stopping = anyio.Event()
    with anyio.fail_after(60):  # a guard against hanging, never reached when it works
        async with anyio.create_task_group() as group:
            group.start_soon(hub.run, stopping)
            await anyio.sleep(0.05)  # the hub is idle, waiting for a first stream
            stopping.set()
