"""One reader of the change feed per worker, shared by every stream the worker serves.

A thousand open streams must not mean a thousand queries each time something changes:
while any stream is open, the hub reads the feed every ``poll_s`` and keeps the newest
changes in a ring buffer; a stream takes what is after its cursor from the buffer and
reads the database itself only to catch up from a cursor older than the buffer.
"""

import bisect
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio

from application.ports.change_feed import ChangePage, ChangeQuery
from domain.changes import Change, ChangeCursor

ReadPage = Callable[[ChangeQuery], Awaitable[ChangePage]]
Latest = Callable[[], Awaitable[ChangeCursor]]

PAGE = 500
logger = logging.getLogger("storage_service.changes")


class ChangeHub:
    """Polls the feed while streams are open; a stream waits on ``changed``."""

    def __init__(self, read: ReadPage, latest: Latest, poll_s: float, capacity: int = 10_000):
        self._read = read
        self._latest = latest
        self._poll_s = poll_s
        self._capacity = capacity
        # Oldest first; trimmed to ``capacity`` once twice that long (amortized O(1)).
        self._recent: list[Change] = []
        self._cursors: list[ChangeCursor] = []
        # The buffer holds every change after ``_floor`` up to ``_head`` (both None: idle).
        self._floor: ChangeCursor | None = None
        self._head: ChangeCursor | None = None
        self._streams = 0
        self._failing = False
        self._wanted = anyio.Event()
        self._moved = anyio.Event()

    @property
    def streams(self) -> int:
        """How many streams are open on this worker."""
        return self._streams

    @property
    def head(self) -> ChangeCursor | None:
        """The newest position the hub has read up to; ``None`` while it is idle."""
        return self._head

    @contextmanager
    def stream(self) -> Iterator[None]:
        """Count a stream as open for the block (the hub reads while one is)."""
        self._streams += 1
        self._wanted.set()
        try:
            yield
        finally:
            self._streams -= 1

    async def run(self, stopping: anyio.Event) -> None:
        """Read the feed until ``stopping``; idle (no query at all) while no stream is open.

        A failed read (the database away) is logged and tried again after ``poll_s``:
        the streams wait meanwhile, and resume where they were.
        """
        while not stopping.is_set():
            if self._streams == 0:
                self._idle()
                with anyio.move_on_after(self._poll_s * 10):
                    await _first(self._wanted, stopping)
                continue
            full = False
            try:
                full = await self._poll()
            except Exception:
                if not self._failing:  # once per outage, not every poll
                    logger.exception("the change hub cannot read the feed; streams wait")
                self._failing = True
            else:
                if self._failing:
                    logger.info("the change hub reads the feed again")
                self._failing = False
            if not full:
                with anyio.move_on_after(self._poll_s):
                    await stopping.wait()

    async def _poll(self) -> bool:
        if self._head is None:
            # The buffer starts here. A stream that began while the hub was idle may be
            # waiting for a change that committed before this point, which the buffer will
            # never hold: wake it, so it reads that from the feed itself.
            self._head = self._floor = await self._latest()
            self._wake()
        page = await self._read(ChangeQuery(after=self._head, limit=PAGE))
        self._take(page)
        return page.full

    def _idle(self) -> None:
        self._wanted = anyio.Event()
        self._recent.clear()
        self._cursors.clear()
        self._floor = self._head = None

    def _take(self, page: ChangePage) -> None:
        if page.reached is None:
            return
        self._recent.extend(page.changes)
        self._cursors.extend(change.cursor for change in page.changes)
        if len(self._recent) > 2 * self._capacity:
            cut = len(self._recent) - self._capacity
            self._floor = self._cursors[cut - 1]
            del self._recent[:cut], self._cursors[:cut]
        self._head = page.reached
        self._wake()

    def _wake(self) -> None:
        moved, self._moved = self._moved, anyio.Event()
        moved.set()

    def after(self, cursor: ChangeCursor) -> list[Change] | None:
        """The buffered changes after ``cursor``; ``None`` if it is older than the buffer."""
        if self._floor is None or cursor < self._floor:
            return None
        return self._recent[bisect.bisect_right(self._cursors, cursor) :]

    def signal(self) -> anyio.Event:
        """Set when the hub next reads something new: take it before ``after``, then wait
        on it, and a read that lands in between is not missed."""
        return self._moved


async def _first(*events: anyio.Event) -> None:
    """Wait until any of ``events`` is set (an idle hub hears its stop at once)."""
    async with anyio.create_task_group() as group:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            group.cancel_scope.cancel()

        for event in events:
            group.start_soon(wait, event)
