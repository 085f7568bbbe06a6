"""The backends this service reports on and fails over between, by the names its answers use."""

from enum import StrEnum


class Backend(StrEnum):
    """A backend's name in ``/health``, the storage reports and ``BackendUnavailableError``."""

    DATABASE = "database"
    FILE = "file"
    CACHE = "cache"
    FALLBACK = "fallback"
    REDIS = "redis"
    S3 = "s3"
