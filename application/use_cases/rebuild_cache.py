from dataclasses import dataclass

import msgspec

from application.services.record_cache import RecordCache
from application.use_cases.running_evaluations import RebuildRunningRegistry


class CacheRebuild(msgspec.Struct, frozen=True, kw_only=True):
    dropped: int
    running: int


@dataclass(frozen=True, slots=True)
class RebuildCache:
    """Drop every cached record (reads refill from the store) and rebuild the running registry."""

    record_cache: RecordCache
    rebuild_running: RebuildRunningRegistry

    async def execute(self) -> CacheRebuild:
        dropped = await self.record_cache.clear()
        running = await self.rebuild_running.execute()
        return CacheRebuild(dropped=dropped, running=running)
