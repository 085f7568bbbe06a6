"""Evaluation keys in process memory (``STORAGE_BACKEND=memory``, use-case tests)."""

from collections.abc import Sequence

from application.ports.evaluation_keys import EvaluationKeys, WrappedKey
from infrastructure.memory.tenants import PerTenant


class MemoryEvaluationKeys(PerTenant, EvaluationKeys):
    """``EvaluationKeys`` as a dict per tenant; one event loop makes each call atomic."""

    def __init__(self) -> None:
        self.keys: dict[str, WrappedKey] = {}

    async def fetch(self, evaluation_id: str) -> WrappedKey | None:
        return self.keys.get(evaluation_id)

    async def add(self, evaluation_id: str, key: WrappedKey) -> WrappedKey:
        return self.keys.setdefault(evaluation_id, key)

    async def destroy(self, evaluation_ids: Sequence[str]) -> int:
        return sum(self.keys.pop(each, None) is not None for each in evaluation_ids)

    async def page(self, after: str | None, limit: int) -> list[tuple[str, WrappedKey]]:
        ids = sorted(i for i in self.keys if after is None or i > after)[:limit]
        return [(evaluation_id, self.keys[evaluation_id]) for evaluation_id in ids]

    async def replace(self, evaluation_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        if self.keys.get(evaluation_id) != old:
            return False
        self.keys[evaluation_id] = new
        return True

    async def count(self) -> int:
        return len(self.keys)
