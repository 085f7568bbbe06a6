"""The app's change hubs, one per tenant whose streams opened, and the reads they make,
each in a scope of its own.

A hub buffers one tenant's feed: one buffer for every tenant would hand a stream other
tenants' changes (and under row-level security one reader cannot see them anyway; ADR
0032). A stream lives for minutes or hours: it must not hold a request's database
session or pooled connection for that long. Every read a stream makes opens a scope of
its tenant, reads and closes it; between reads a stream holds nothing but its place in
its hub.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
from dishka import AsyncContainer

from application.failover.reads import RecordReads
from application.ports.change_feed import ChangeFeed, ChangePage, ChangeQuery
from application.services.change_hub import ChangeHub
from application.use_cases.changes import ReadChanges
from application.use_cases.logs import EvaluationLogs
from domain.changes import ChangeCursor
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from infrastructure.metrics import OPEN_STREAMS
from interfaces import acting
from interfaces.background import background
from interfaces.settings import ChangeSettings


class TenantFeed:
    """One tenant's feed as its streams (and its relay) read it: its hub and its reads.

    The reads are the worker's, not a caller's: each acts as the system for the tenant.
    """

    def __init__(self, container: AsyncContainer, tenant: TenantId, settings: ChangeSettings):
        self._container = container
        self.tenant = tenant
        self.keepalive_s = settings.keepalive_s
        self.hub = ChangeHub(self.read, self.latest, poll_s=settings.poll_ms / 1000)

    async def read(self, query: ChangeQuery) -> ChangePage:
        async with acting.system_scope(self._container, self.tenant) as scope:
            feed: ChangeFeed = await scope.get(ChangeFeed)
            return await feed.read(query)

    async def latest(self) -> ChangeCursor:
        async with acting.system_scope(self._container, self.tenant) as scope:
            return await (await scope.get(ReadChanges)).latest()

    async def check(self, cursor: ChangeCursor, field: str) -> None:
        """410 for a cursor the feed cannot resume from, before a stream starts."""
        async with acting.system_scope(self._container, self.tenant) as scope:
            await (await scope.get(ReadChanges)).check(cursor, field)

    async def logs(self, evaluation_id: EvaluationId, offset: int) -> EvaluationLogs:
        async with acting.system_scope(self._container, self.tenant) as scope:
            return await (await scope.get(RecordReads)).logs(evaluation_id, offset)


class LiveFeed:
    """One per app: each tenant's feed, made when first asked for; while the app runs
    (``run``) every hub runs beside it, idle (no query) while none of its streams is open."""

    def __init__(self, container: AsyncContainer, settings: ChangeSettings) -> None:
        self._container = container
        self._settings = settings
        self._feeds: dict[TenantId, TenantFeed] = {}
        self._running: tuple[anyio.abc.TaskGroup, anyio.Event] | None = None
        OPEN_STREAMS.set_function(lambda: self.streams)

    @property
    def streams(self) -> int:
        """How many streams are open on this worker, of every tenant."""
        return sum(feed.hub.streams for feed in self._feeds.values())

    def of(self, tenant: TenantId) -> TenantFeed:
        """``tenant``'s feed (its hub running from now on, while the app runs)."""
        found = self._feeds.get(tenant)
        if found is None:
            found = self._feeds[tenant] = TenantFeed(self._container, tenant, self._settings)
            if self._running is not None:
                group, stopping = self._running
                group.start_soon(found.hub.run, stopping)
        return found

    async def run(self, stopping: anyio.Event) -> None:
        """Run every tenant's hub, and each one made meanwhile, until ``stopping``."""
        async with anyio.create_task_group() as group:
            self._running = (group, stopping)
            try:
                for feed in list(self._feeds.values()):
                    group.start_soon(feed.hub.run, stopping)
                await stopping.wait()
            finally:
                self._running = None


@asynccontextmanager
async def live_changes(container: AsyncContainer) -> AsyncIterator[None]:
    """Run the hubs beside the app (each reads nothing while no stream of it is open)."""
    live = await container.get(LiveFeed)
    async with background("change hubs", live.run):
        yield
