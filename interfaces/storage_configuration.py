"""What ``/storage`` says of this deployment's configuration, from its settings."""

from application.use_cases.storage_report import StorageConfiguration
from domain.payload import PayloadLocation
from interfaces.settings import Settings, StorageBackend


def storage_configuration(settings: Settings) -> StorageConfiguration:
    return StorageConfiguration(
        primary_backend=settings.storage_backend.value,
        fallback_backend=settings.fallback_backend.value,
        database="postgresql"
        if settings.is_postgres
        else "sqlite"
        if settings.storage_backend is StorageBackend.DATABASE
        else settings.storage_backend.value,
        cache=("redis" if settings.redis_url else "memory")
        if settings.enable_caching
        else "disabled",
        caching_enabled=settings.enable_caching,
        file_storage_path=str(settings.file_storage_path),
        large_file_threshold=settings.large_file_threshold,
        compression_threshold=settings.compression_threshold,
        preview_size=settings.preview_size,
        cache_ttl=settings.cache_ttl,
        max_request_bytes=settings.max_request_bytes,
        blob_backend=StorageBackend.MEMORY.value
        if settings.storage_backend is StorageBackend.MEMORY
        else settings.blob_backend.value,
        cache_backend="redis" if settings.redis_url else "memory",
        blob_urls=_blob_urls(settings),
    )


def _blob_urls(settings: Settings) -> dict[str, str]:
    """The URL each blob location's keys are relative to (``/complete`` links to them)."""
    if settings.storage_backend is StorageBackend.MEMORY:
        return {PayloadLocation.FILE.value: "memory://"}
    urls = {PayloadLocation.FILE.value: settings.file_storage_path.resolve().as_uri() + "/"}
    if settings.s3_configured:
        urls[PayloadLocation.S3.value] = f"s3://{settings.s3_bucket}/{settings.s3_prefix}"
    return urls
