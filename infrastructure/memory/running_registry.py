"""The running registry in process memory (no ``REDIS_URL``).

Each tenant's index is trusted from the start (a fresh process tracks every change it
makes) and stays so, except when a ``track``/``untrack`` happens while ``rebuild`` is
reading the database: the older view might have overwritten that change, so ``list``
answers ``None`` until the next rebuild, like the Redis registry.
Its lookups are counted like the Redis registry's: ``get`` hits when it holds the
entry, ``list`` when it can answer (else the database does).
"""

import builtins
from dataclasses import dataclass, field

import msgspec

from application.ports.running_registry import LoadActive, RunningRegistry
from application.queries import RunningInfo
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId, qualified_id
from infrastructure.cache_analytics import RUNNING, Lookups


@dataclass(slots=True)
class _Index:
    """One tenant's entries and whether they can be trusted."""

    running: dict[EvaluationId, RunningInfo] = field(default_factory=dict)
    writes: int = 0
    trusted: bool = True


class MemoryRunningRegistry(RunningRegistry):
    """``RunningRegistry`` in a dict per tenant; entries are merged like the Redis ones."""

    def __init__(self) -> None:
        self._indexes: dict[TenantId, _Index] = {}
        self.lookups = Lookups(RUNNING)

    def _index(self, tenant: TenantId) -> _Index:
        return self._indexes.setdefault(tenant, _Index())

    async def track(self, tenant: TenantId, info: RunningInfo) -> None:
        index = self._index(tenant)
        index.writes += 1
        index.running[info.evaluation_id] = info.filled_from(index.running.get(info.evaluation_id))

    async def untrack(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        index = self._index(tenant)
        index.writes += 1
        index.running.pop(evaluation_id, None)

    async def get(self, tenant: TenantId, evaluation_id: EvaluationId) -> RunningInfo | None:
        info = self._index(tenant).running.get(evaluation_id)
        self.lookups.count(info is not None)
        return info

    async def list(self, tenant: TenantId) -> builtins.list[RunningInfo] | None:
        index = self._index(tenant)
        self.lookups.count(index.trusted)
        if not index.trusted:
            return None
        return builtins.list(index.running.values())

    async def rebuild(self, tenant: TenantId, load: LoadActive) -> builtins.list[RunningInfo]:
        index = self._index(tenant)
        writes = index.writes
        infos = [info.filled_from(index.running.get(info.evaluation_id)) for info in await load()]
        index.running = {info.evaluation_id: info for info in infos}
        index.trusted = index.writes == writes
        return infos

    def distrust(self, tenant: TenantId) -> None:
        """Make ``list`` answer ``None`` for ``tenant`` until its next clean rebuild."""
        self._index(tenant).trusted = False

    def sizes(self) -> builtins.list[tuple[str, int]]:
        """(key, bytes of key and JSON entry) of each entry, named as in Redis (the
        default tenant's as the platform's, the others' qualified)."""
        keys = (
            (f"eval:{qualified_id(tenant, i)}:running", info)
            for tenant, index in self._indexes.items()
            for i, info in index.running.items()
        )
        return [(key, len(key) + len(msgspec.json.encode(info))) for key, info in keys]
