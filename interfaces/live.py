"""The app's change hub, and the reads its streams make, each in a scope of its own.

A stream lives for minutes or hours: it must not hold a request's database session or
pooled connection for that long. Every read a stream makes opens a scope, reads and
closes it; between reads a stream holds nothing but its place in the hub.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dishka import AsyncContainer

from application.failover.reads import RecordReads
from application.ports.change_feed import ChangeFeed, ChangePage, ChangeQuery
from application.services.change_hub import ChangeHub
from application.use_cases.changes import ReadChanges
from application.use_cases.logs import EvaluationLogs
from domain.changes import ChangeCursor
from domain.identifiers import EvaluationId
from infrastructure.metrics import OPEN_STREAMS
from interfaces import acting
from interfaces.background import background
from interfaces.settings import ChangeSettings


class LiveFeed:
    """One per app: the hub every stream of this worker waits on."""

    def __init__(self, container: AsyncContainer, settings: ChangeSettings) -> None:
        self._container = container
        self.keepalive_s = settings.keepalive_s
        self.hub = ChangeHub(self.read, self.latest, poll_s=settings.poll_ms / 1000)
        OPEN_STREAMS.set_function(lambda: self.hub.streams)

    # The hub's reads (and the relay's) are the worker's, not a caller's: they read the
    # default tenant's feed, the only one served so far (a hub per tenant is ADR 0032's
    # step 6).
    async def read(self, query: ChangeQuery) -> ChangePage:
        async with acting.system_scope(self._container) as scope:
            feed: ChangeFeed = await scope.get(ChangeFeed)
            return await feed.read(query)

    async def latest(self) -> ChangeCursor:
        async with acting.system_scope(self._container) as scope:
            return await (await scope.get(ReadChanges)).latest()

    async def check(self, cursor: ChangeCursor, field: str) -> None:
        """410 for a cursor the feed cannot resume from, before a stream starts."""
        async with self._container() as scope:
            await (await scope.get(ReadChanges)).check(cursor, field)

    async def logs(self, evaluation_id: EvaluationId, offset: int) -> EvaluationLogs:
        async with self._container() as scope:
            return await (await scope.get(RecordReads)).logs(evaluation_id, offset)


@asynccontextmanager
async def live_changes(container: AsyncContainer) -> AsyncIterator[None]:
    """Run the hub beside the app (it reads nothing while no stream is open)."""
    live = await container.get(LiveFeed)
    async with background("change hub", live.hub.run):
        yield
