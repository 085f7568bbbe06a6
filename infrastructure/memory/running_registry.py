"""The running registry in process memory (no ``REDIS_URL``).

It is trusted from the start (a fresh process tracks every change it makes)
and stays so, except when a ``track``/``untrack`` happens while ``rebuild`` is
reading the database: the older view might have overwritten that change, so
``list`` answers ``None`` until the next rebuild, like the Redis registry.
Its lookups are counted like the Redis registry's: ``get`` hits when it holds the
entry, ``list`` when it can answer (else the database does).
"""

import builtins

import msgspec

from application.ports.running_registry import LoadActive, RunningRegistry
from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from infrastructure.cache_analytics import RUNNING, Lookups


class MemoryRunningRegistry(RunningRegistry):
    """``RunningRegistry`` in a dict; entries are merged like the Redis ones."""

    def __init__(self) -> None:
        self._running: dict[EvaluationId, RunningInfo] = {}
        self._writes = 0
        self._trusted = True
        self.lookups = Lookups(RUNNING)

    async def track(self, info: RunningInfo) -> None:
        self._writes += 1
        self._running[info.evaluation_id] = info.filled_from(self._running.get(info.evaluation_id))

    async def untrack(self, evaluation_id: EvaluationId) -> None:
        self._writes += 1
        self._running.pop(evaluation_id, None)

    async def get(self, evaluation_id: EvaluationId) -> RunningInfo | None:
        info = self._running.get(evaluation_id)
        self.lookups.count(info is not None)
        return info

    async def list(self) -> builtins.list[RunningInfo] | None:
        self.lookups.count(self._trusted)
        if not self._trusted:
            return None
        return builtins.list(self._running.values())

    async def rebuild(self, load: LoadActive) -> builtins.list[RunningInfo]:
        writes = self._writes
        infos = [info.filled_from(self._running.get(info.evaluation_id)) for info in await load()]
        self._running = {info.evaluation_id: info for info in infos}
        self._trusted = self._writes == writes
        return infos

    def distrust(self) -> None:
        """Make ``list`` answer ``None`` until the next clean rebuild."""
        self._trusted = False

    def sizes(self) -> builtins.list[tuple[str, int]]:
        """(key, bytes of key and JSON entry) of each entry, named as in Redis."""
        keys = ((f"eval:{i}:running", info) for i, info in self._running.items())
        return [(key, len(key) + len(msgspec.json.encode(info))) for key, info in keys]
