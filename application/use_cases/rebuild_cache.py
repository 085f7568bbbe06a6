import msgspec

from application.services.record_cache import RecordCache
from application.use_cases.running_evaluations import RebuildRunningRegistry


class CacheRebuild(msgspec.Struct, frozen=True, kw_only=True):
    dropped: int
    running: int


class RebuildCache:
    """Drop every cached record (reads refill from the store) and rebuild the running registry."""

    def __init__(self, record_cache: RecordCache, rebuild_running: RebuildRunningRegistry) -> None:
        self._record_cache = record_cache
        self._rebuild_running = rebuild_running

    async def execute(self) -> CacheRebuild:
        dropped = await self._record_cache.clear()
        running = await self._rebuild_running.execute()
        return CacheRebuild(dropped=dropped, running=running)
