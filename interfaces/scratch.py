"""``ScratchStores`` on a container of the memory adapters: the journal's read model.

The scratch deployment is built by the same providers as the app's
(``STORAGE_BACKEND=memory``, no cache, no journal) with the app's clock and the
actor ``journal``: a journaled write runs the same use cases as on the primary. It
never touches the primary, the cache or the real blob store. Its graph is built
once (about 13 ms); each store is a session scope of it, with a database and a blob
store of its own, thrown away with its view (an output shown while the journal is
pending is the scratch copy).
"""

import copy
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from dishka import AsyncContainer, Scope

from application.failover.pinned_clock import pinned
from application.failover.writes import WriteHandlers
from application.intents import Target, WriteIntent
from application.ports.event_log import EventLog
from application.ports.log_store import LogStore
from application.ports.scratch_store import ScratchStore, ScratchStores
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.timeline import EvaluationEvent, LogSlice
from infrastructure.memory.evaluations import MemoryDatabase

R = TypeVar("R")


class ContainerScratchStore(ScratchStore):
    def __init__(self, container: AsyncContainer) -> None:
        self._container = container

    async def _database(self) -> MemoryDatabase:
        return await self._container.get(MemoryDatabase)

    async def seed(self, evaluation: Evaluation) -> None:
        (await self._database()).evaluations[evaluation.id] = copy.deepcopy(evaluation)

    async def apply(self, intent: WriteIntent[R], evaluation_id: EvaluationId, at: datetime) -> R:
        target = Target(evaluation_id, acknowledged=True)
        with pinned(at):
            async with self._container() as request:
                handlers = await request.get(WriteHandlers)
                return await handlers.run(intent, target)

    async def get(self, evaluation_id: EvaluationId) -> Evaluation | None:
        found = (await self._database()).live(evaluation_id)
        return None if found is None else copy.deepcopy(found)

    async def events(self, evaluation_id: EvaluationId) -> list[EvaluationEvent]:
        async with self._container() as request:
            events: EventLog = await request.get(EventLog)
            return await events.list(evaluation_id)

    async def log(self, evaluation_id: EvaluationId, offset: int) -> LogSlice:
        async with self._container() as request:
            logs: LogStore = await request.get(LogStore)
            return await logs.read(evaluation_id, offset)


class ContainerScratchStores(ScratchStores):
    """Opens each store as a session of one scratch container, built on first use."""

    def __init__(self, build: Callable[[], AsyncContainer]) -> None:
        self._build = build
        self._container: AsyncContainer | None = None

    def open(self) -> ContainerScratchStore:
        if self._container is None:
            self._container = self._build()
        # A session holds no finalizer: dropping it with its view is all it needs.
        return ContainerScratchStore(self._container(scope=Scope.SESSION))

    async def close(self) -> None:
        if self._container is not None:
            await self._container.close()
