"""What ``/storage`` says of this deployment's configuration, from its settings."""

from application.use_cases.storage_report import StorageConfiguration
from domain.payload import PayloadLocation
from interfaces.settings import Settings, StorageBackend


def storage_configuration(settings: Settings) -> StorageConfiguration:
    cache_backend = "redis" if settings.redis.url else "memory"
    return StorageConfiguration(
        primary_backend=settings.storage.backend.value,
        fallback_backend=settings.storage.fallback_backend.value,
        database="postgresql"
        if settings.database.is_postgres
        else "sqlite"
        if settings.storage.backend is StorageBackend.DATABASE
        else settings.storage.backend.value,
        cache=cache_backend if settings.cache.enabled else "disabled",
        caching_enabled=settings.cache.enabled,
        file_storage_path=str(settings.storage.file_storage_path),
        large_file_threshold=settings.storage.large_file_threshold,
        compression_threshold=settings.storage.compression_threshold,
        preview_size=settings.storage.preview_size,
        cache_ttl=settings.cache.ttl,
        max_request_bytes=settings.limits.request_bytes,
        blob_backend=StorageBackend.MEMORY.value
        if settings.storage.backend is StorageBackend.MEMORY
        else settings.storage.blob_backend.value,
        cache_backend=cache_backend,
        blob_urls=_blob_urls(settings),
    )


def _blob_urls(settings: Settings) -> dict[str, str]:
    """The URL each blob location's keys are relative to (``/complete`` links to them)."""
    if settings.storage.backend is StorageBackend.MEMORY:
        return {PayloadLocation.FILE.value: "memory://"}
    urls = {PayloadLocation.FILE.value: settings.storage.file_storage_path.resolve().as_uri() + "/"}
    if settings.s3.configured:
        urls[PayloadLocation.S3.value] = f"s3://{settings.s3.bucket}/{settings.s3.prefix}"
    return urls
