"""One settings object, parsed and validated once at start.

A bad value stops the start with one line that names the variable.
"""

import os
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import msgspec

from domain.payload import StorageThresholds
from infrastructure.sql.engine import async_database_url

T = TypeVar("T")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class StorageBackend(StrEnum):
    DATABASE = "database"
    FILE = "file"
    MEMORY = "memory"


class FallbackBackend(StrEnum):
    FILE = "file"
    MEMORY = "memory"
    NONE = "none"


DEFAULT_DATA_DIR = Path("data")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_DATA_DIR / 'storage.db'}"
    redis_url: str | None = None
    redis_key_prefix: str = ""
    storage_backend: StorageBackend = StorageBackend.DATABASE
    fallback_backend: FallbackBackend = FallbackBackend.FILE
    enable_caching: bool = True
    cache_ttl: int = 3600
    file_storage_path: Path = DEFAULT_DATA_DIR / "files"
    large_file_threshold: int = 102_400
    compression_threshold: int = 10_240
    preview_size: int = 1_000
    max_request_bytes: int = 64 * 1024 * 1024
    max_upload_bytes: int = 10 * 1024**3
    db_pool_size: int = 10
    db_statement_timeout_ms: int = 30_000
    db_connect_timeout_s: float = 10.0
    redis_timeout_s: float = 0.5
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = 8082

    @property
    def thresholds(self) -> StorageThresholds:
        return StorageThresholds(
            large_file_threshold=self.large_file_threshold,
            compression_threshold=self.compression_threshold,
            preview_size=self.preview_size,
        )

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


def normalize_database_url(url: str) -> str:
    """Accept the spec's ``postgresql://`` and ``sqlite:///`` forms; pick the async drivers."""
    normalized = async_database_url(url)
    if not normalized.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        raise ValueError("must be a postgresql:// or sqlite:/// URL")
    return normalized


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _parse_non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _parse_port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError("must be a port number between 1 and 65535")
    return value


def _parse_positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


def _parse_log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _parse_redis_url(raw: str) -> str | None:
    if not raw.strip():
        return None
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return raw


def _choice(kind: type[StrEnum]) -> Callable[[str], StrEnum]:
    def parse(raw: str) -> StrEnum:
        try:
            return kind(raw.strip().lower())
        except ValueError:
            allowed = "|".join(member.value for member in kind)
            raise ValueError(f"must be one of {allowed}") from None

    return parse


_PARSERS: dict[str, tuple[str, Callable[[str], object]]] = {
    "DATABASE_URL": ("database_url", normalize_database_url),
    "REDIS_URL": ("redis_url", _parse_redis_url),
    "REDIS_KEY_PREFIX": ("redis_key_prefix", str),
    "STORAGE_BACKEND": ("storage_backend", _choice(StorageBackend)),
    "FALLBACK_BACKEND": ("fallback_backend", _choice(FallbackBackend)),
    "ENABLE_CACHING": ("enable_caching", _parse_bool),
    "CACHE_TTL": ("cache_ttl", _parse_positive_int),
    "FILE_STORAGE_PATH": ("file_storage_path", Path),
    "LARGE_FILE_THRESHOLD": ("large_file_threshold", _parse_non_negative_int),
    "COMPRESSION_THRESHOLD": ("compression_threshold", _parse_non_negative_int),
    "PREVIEW_SIZE": ("preview_size", _parse_non_negative_int),
    "MAX_REQUEST_BYTES": ("max_request_bytes", _parse_positive_int),
    "MAX_UPLOAD_BYTES": ("max_upload_bytes", _parse_positive_int),
    "DB_POOL_SIZE": ("db_pool_size", _parse_positive_int),
    "DB_STATEMENT_TIMEOUT_MS": ("db_statement_timeout_ms", _parse_positive_int),
    "DB_CONNECT_TIMEOUT_S": ("db_connect_timeout_s", _parse_positive_float),
    "REDIS_TIMEOUT_S": ("redis_timeout_s", _parse_positive_float),
    "LOG_LEVEL": ("log_level", _parse_log_level),
    "HOST": ("host", str),
    "PORT": ("port", _parse_port),
}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from ``environ`` (default: the process environment) and overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for variable, (field, parse) in _PARSERS.items():
        raw = env.get(variable)
        if raw is None or (raw == "" and variable != "REDIS_KEY_PREFIX"):
            continue
        try:
            values[field] = parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{variable}={raw!r}: {_reason(exc)}") from None
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.storage_backend is StorageBackend.FILE:
        raise SettingsError(
            "STORAGE_BACKEND=file: records on the file system alone are not supported yet; "
            "use database (files still hold large outputs) or memory"
        )
    if settings.compression_threshold > settings.large_file_threshold:
        raise SettingsError(
            "COMPRESSION_THRESHOLD: must not exceed LARGE_FILE_THRESHOLD "
            f"({settings.compression_threshold} > {settings.large_file_threshold})"
        )
    return settings


def _reason(exc: ValueError) -> str:
    text = str(exc)
    if text.startswith("invalid literal"):
        return "must be a whole number"
    if text.startswith("could not convert"):
        return "must be a number"
    return text
