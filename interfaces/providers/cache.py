"""The record cache, running registry, log tail and worker logs: Redis or in-process."""

from collections.abc import AsyncIterator

from dishka import (
    Provider,
    Scope,
    provide,
)

from application.ports.cache import Cache
from application.ports.log_tail import LogTail
from application.ports.running_registry import RunningRegistry
from application.ports.worker_logs import WorkerLogs
from application.services.record_cache import RecordCache
from infrastructure.memory.cache import MemoryCache, MemoryCacheInspector
from infrastructure.memory.log_tail import MemoryLogTail, NoLogTail
from infrastructure.memory.running_registry import MemoryRunningRegistry
from infrastructure.memory.worker_logs import NoWorkerLogs
from infrastructure.redis.cache import RedisCache
from infrastructure.redis.connection import RedisConnection
from infrastructure.redis.inspector import RedisInspector
from infrastructure.redis.log_tail import RedisLogTail
from infrastructure.redis.platform_keys import PlatformKeys
from infrastructure.redis.running_registry import RedisRunningRegistry
from infrastructure.redis.worker_logs import RedisWorkerLogs
from interfaces.providers.keys import CacheInspector
from interfaces.providers.sealing import BlobSeal
from interfaces.settings import Settings


class RedisProvider(Provider):
    """Cache and running registry in Redis; both survive a Redis outage by design."""

    scope = Scope.APP

    @provide
    async def connection(self, settings: Settings) -> AsyncIterator[RedisConnection]:
        assert settings.redis.url is not None
        connection = RedisConnection(
            settings.redis.url, timeout_s=settings.redis.timeout_s, cluster=settings.redis.cluster
        )
        yield connection
        await connection.close()

    @provide
    def record_cache(
        self, connection: RedisConnection, settings: Settings, seal: BlobSeal
    ) -> RecordCache:
        if not settings.cache.enabled:
            return RecordCache(None)
        cache: Cache = RedisCache(
            connection, ttl_seconds=settings.cache.ttl, prefix=settings.redis.key_prefix
        )
        return RecordCache(seal.cache(cache))  # a record holds code, metadata, inline output

    @provide
    def running(self, connection: RedisConnection, settings: Settings) -> RunningRegistry:
        return RedisRunningRegistry(
            connection,
            prefix=settings.redis.key_prefix,
            keys=PlatformKeys(settings.redis.platform_tenant),
        )

    @provide
    def worker_logs(self, connection: RedisConnection, settings: Settings) -> WorkerLogs:
        # Read whether or not this service caches: the platform's worker writes it anyway.
        return RedisWorkerLogs(
            connection,
            prefix=settings.redis.key_prefix,
            keys=PlatformKeys(settings.redis.platform_tenant),
        )

    @provide
    def inspector(self, connection: RedisConnection, settings: Settings) -> CacheInspector:
        return RedisInspector(connection, prefix=settings.redis.key_prefix)

    @provide
    def log_tail(self, connection: RedisConnection, settings: Settings) -> LogTail:
        if not settings.cache.enabled or settings.encryption.enabled:
            # Log text is not copied into Redis in clear: tails are read from the log store.
            return NoLogTail()
        return RedisLogTail(
            connection,
            max_bytes=settings.cache.log_tail_bytes,
            ttl_seconds=settings.cache.ttl,
            prefix=settings.redis.key_prefix,
        )


class InProcessCacheProvider(Provider):
    """Cache and running registry inside this process (no ``REDIS_URL``)."""

    scope = Scope.APP
    running = provide(MemoryRunningRegistry, provides=RunningRegistry)
    worker_logs = provide(NoWorkerLogs, provides=WorkerLogs)

    @provide
    def cache(self, settings: Settings) -> MemoryCache:
        return MemoryCache(ttl_seconds=settings.cache.ttl)

    @provide
    def record_cache(self, cache: MemoryCache, settings: Settings) -> RecordCache:
        return RecordCache(cache if settings.cache.enabled else None)

    @provide
    def inspector(
        self, cache: MemoryCache, running: RunningRegistry, tail: LogTail
    ) -> CacheInspector:
        # The registry and the tail are measured beside the cache when they are in-process.
        return MemoryCacheInspector(
            cache,
            running if isinstance(running, MemoryRunningRegistry) else None,
            tail if isinstance(tail, MemoryLogTail) else None,
        )

    @provide
    def log_tail(self, settings: Settings) -> LogTail:
        return (
            MemoryLogTail(settings.cache.log_tail_bytes) if settings.cache.enabled else NoLogTail()
        )
