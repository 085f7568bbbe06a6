"""The running registry in process memory (no ``REDIS_URL``)."""

import builtins

from application.queries import RunningInfo
from domain.identifiers import EvaluationId


class MemoryRunningRegistry:
    """``RunningRegistry`` in a dict; it always answers, so ``list`` never returns ``None``."""

    def __init__(self) -> None:
        self._running: dict[EvaluationId, RunningInfo] = {}

    async def track(self, info: RunningInfo) -> None:
        self._running[info.evaluation_id] = info

    async def untrack(self, evaluation_id: EvaluationId) -> None:
        self._running.pop(evaluation_id, None)

    async def get(self, evaluation_id: EvaluationId) -> RunningInfo | None:
        return self._running.get(evaluation_id)

    async def list(self) -> builtins.list[RunningInfo] | None:
        return builtins.list(self._running.values())

    async def replace_all(self, infos: builtins.list[RunningInfo]) -> None:
        self._running = {info.evaluation_id: info for info in infos}
