"""One provider per port, chosen from the settings."""

from dishka import Provider

from interfaces.providers.blobs import FileBlobProvider, MemoryBlobProvider, NoBlobUrlsProvider
from interfaces.providers.cache import InProcessCacheProvider, RedisProvider
from interfaces.providers.core import CoreProvider
from interfaces.providers.inspectors import InspectorsProvider
from interfaces.providers.records import (
    MemoryRecordsProvider,
    PostgresWritePathsProvider,
    SqlProvider,
    SqlWritePathsProvider,
)
from interfaces.providers.sealing import EvaluationKeysProvider, SealProvider
from interfaces.settings import BlobBackend, Settings, StorageBackend


def selected(settings: Settings) -> list[Provider]:
    """Pick one adapter per port from the settings."""
    records: list[Provider]
    if settings.storage.backend is StorageBackend.MEMORY:
        records = [MemoryRecordsProvider()]
    elif settings.database.is_postgres:
        records = [SqlProvider(), PostgresWritePathsProvider()]
    else:
        records = [SqlProvider(), SqlWritePathsProvider()]
    blobs: list[Provider]
    if settings.storage.backend is StorageBackend.MEMORY:
        blobs = [MemoryBlobProvider(), NoBlobUrlsProvider()]
    elif settings.storage.blob_backend is BlobBackend.S3 or settings.s3.configured:
        # Imported only here: S3's client costs most of a second of every process start.
        from interfaces.providers.s3 import S3BlobProvider, S3Provider, TieringPlacementProvider

        if settings.storage.blob_backend is BlobBackend.S3:
            blobs = [S3Provider(), S3BlobProvider()]
        else:
            blobs = [FileBlobProvider(), S3Provider(), TieringPlacementProvider()]
    else:
        blobs = [FileBlobProvider(), NoBlobUrlsProvider()]
    cache: Provider = RedisProvider() if settings.redis.url else InProcessCacheProvider()
    return [
        CoreProvider(),
        SealProvider(),
        *records,
        EvaluationKeysProvider(),
        *blobs,
        cache,
        InspectorsProvider(),
    ]
