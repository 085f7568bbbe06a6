"""One settings object, parsed and validated once at start.

A bad value stops the start with one line that names the variable.
"""

import math
import os
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import msgspec

from application.services.api_keys import ApiKey, digest_of
from domain.access import AccessScope
from domain.limits import InputLimits
from domain.payload import StorageThresholds
from infrastructure.sql.engine import async_database_url

T = TypeVar("T")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class StorageBackend(StrEnum):
    DATABASE = "database"
    FILE = "file"
    MEMORY = "memory"


class BlobBackend(StrEnum):
    FILE = "file"
    S3 = "s3"


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


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
    # Pre-load the most recently changed records into the cache at start, in the background.
    cache_warm_on_start: bool = True
    cache_warm_count: int = 1000
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
    log_format: LogFormat = LogFormat.CONSOLE
    workers: int = 1
    retention_days: int | None = None  # None: no periodic cleanup
    retention_interval_s: float = 3600.0
    # The longest wait between probes of an unavailable primary (the backoff's cap).
    failover_probe_interval_s: float = 5.0
    api_keys: tuple[ApiKey, ...] = ()
    docs_public: bool = True
    cors_origins: tuple[str, ...] = ()
    max_metadata_bytes: int = 64 * 1024
    max_metadata_depth: int = 16
    max_event_message_bytes: int = 64 * 1024
    max_log_chunk_bytes: int = 1024 * 1024
    max_list_limit: int = 1000
    # Scale-out (docs/scale-out.md): blobs in S3, Redis Cluster, tiering.
    blob_backend: BlobBackend = BlobBackend.FILE
    s3_endpoint_url: str | None = None  # None: AWS S3 itself
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_region: str | None = None  # None: AWS_REGION / AWS_DEFAULT_REGION / profile
    s3_create_bucket: bool = True
    s3_presign_expiry_s: int = 3600
    tier_after_days: int | None = None  # default age of `storage-service tier`
    # With TIER_AFTER_DAYS: the service tiers by itself, at start and every this many seconds.
    tier_interval_s: float | None = None
    redis_cluster: bool = False

    @property
    def thresholds(self) -> StorageThresholds:
        return StorageThresholds(
            large_file_threshold=self.large_file_threshold,
            compression_threshold=self.compression_threshold,
            preview_size=self.preview_size,
        )

    @property
    def limits(self) -> InputLimits:
        return InputLimits(
            metadata_bytes=self.max_metadata_bytes,
            metadata_depth=self.max_metadata_depth,
            event_message_bytes=self.max_event_message_bytes,
            log_chunk_bytes=self.max_log_chunk_bytes,
            list_limit=self.max_list_limit,
        )

    @property
    def s3_configured(self) -> bool:
        """Whether an S3 bucket is set (blob backend, tiering target or presigned URLs)."""
        return self.s3_bucket is not None

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def for_scratch(self) -> "Settings":
        """A journal view's deployment: memory records and blobs, no cache, no journal,
        the same thresholds and limits."""
        return msgspec.structs.replace(
            self,
            storage_backend=StorageBackend.MEMORY,
            fallback_backend=FallbackBackend.NONE,
            redis_url=None,
            enable_caching=False,
            blob_backend=BlobBackend.FILE,
            s3_bucket=None,
        )


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
    if not math.isfinite(value) or value <= 0:
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
    if not raw.startswith(("redis://", "rediss://", "unix://", *CLUSTER_SCHEMES)):
        raise ValueError("must be a redis://, rediss://, unix:// or redis+cluster:// URL")
    return raw


# ``redis+cluster://host:port`` (or ``rediss+cluster://``) is a Redis Cluster seed node,
# the same as ``REDIS_CLUSTER=true`` with ``redis://host:port``.
CLUSTER_SCHEMES = {"redis+cluster://": "redis://", "rediss+cluster://": "rediss://"}


def _parse_http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return raw.rstrip("/")


def _parse_bucket(raw: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", raw):
        raise ValueError("must be an S3 bucket name (3-63 of a-z 0-9 . -)")
    return raw


def _parse_s3_prefix(raw: str) -> str:
    prefix = raw.strip("/")
    return f"{prefix}/" if prefix else ""


_KEY_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
MIN_SECRET_LENGTH = 16


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """``name:secret:scope`` entries separated by commas or new lines.

    Errors name the entry by position and the key by name, never the secret.
    """
    keys: list[ApiKey] = []
    entries = [entry.strip() for entry in re.split(r"[,\n]", raw)]
    for position, entry in enumerate((e for e in entries if e and not e.startswith("#")), 1):
        parts = entry.split(":")
        if len(parts) != 3:
            raise ValueError(f"entry {position} must look like name:secret:scope")
        name, secret, scope = (part.strip() for part in parts)
        if not _KEY_NAME.fullmatch(name):
            raise ValueError(f"entry {position}: the name may hold only letters, digits and . _ -")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"key {name!r}: the secret must be at least {MIN_SECRET_LENGTH} chars")
        try:
            access = AccessScope(scope.lower())
        except ValueError:
            raise ValueError(f"key {name!r}: the scope must be read, write or admin") from None
        if any(key.name == name for key in keys):
            raise ValueError(f"key {name!r} is defined twice")
        keys.append(ApiKey(name=name, scope=access, digest=digest_of(secret)))
    return tuple(keys)


def _parse_presign_expiry(raw: str) -> int:
    value = _parse_positive_int(raw)
    if value > MAX_PRESIGN_EXPIRY_S:
        raise ValueError(f"must be at most {MAX_PRESIGN_EXPIRY_S} (7 days, the SigV4 limit)")
    return value


MAX_PRESIGN_EXPIRY_S = 7 * 24 * 3600


def _parse_origins(raw: str) -> tuple[str, ...]:
    origins = tuple(origin.strip() for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"{origin!r} must be an http:// or https:// origin")
    return origins


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
    "CACHE_WARM_ON_START": ("cache_warm_on_start", _parse_bool),
    "CACHE_WARM_COUNT": ("cache_warm_count", _parse_positive_int),
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
    "LOG_FORMAT": ("log_format", _choice(LogFormat)),
    "WORKERS": ("workers", _parse_positive_int),
    "RETENTION_DAYS": ("retention_days", _parse_positive_int),
    "RETENTION_INTERVAL_S": ("retention_interval_s", _parse_positive_float),
    "FAILOVER_PROBE_INTERVAL_S": ("failover_probe_interval_s", _parse_positive_float),
    "DOCS_PUBLIC": ("docs_public", _parse_bool),
    "CORS_ORIGINS": ("cors_origins", _parse_origins),
    "MAX_METADATA_BYTES": ("max_metadata_bytes", _parse_positive_int),
    "MAX_METADATA_DEPTH": ("max_metadata_depth", _parse_positive_int),
    "MAX_EVENT_MESSAGE_BYTES": ("max_event_message_bytes", _parse_positive_int),
    "MAX_LOG_CHUNK_BYTES": ("max_log_chunk_bytes", _parse_positive_int),
    "MAX_LIST_LIMIT": ("max_list_limit", _parse_positive_int),
    "BLOB_BACKEND": ("blob_backend", _choice(BlobBackend)),
    "S3_ENDPOINT_URL": ("s3_endpoint_url", _parse_http_url),
    "S3_BUCKET": ("s3_bucket", _parse_bucket),
    "S3_PREFIX": ("s3_prefix", _parse_s3_prefix),
    "S3_REGION": ("s3_region", str),
    "S3_CREATE_BUCKET": ("s3_create_bucket", _parse_bool),
    "S3_PRESIGN_EXPIRY_S": ("s3_presign_expiry_s", _parse_presign_expiry),
    "TIER_AFTER_DAYS": ("tier_after_days", _parse_positive_int),
    "TIER_INTERVAL_S": ("tier_interval_s", _parse_positive_float),
    "REDIS_CLUSTER": ("redis_cluster", _parse_bool),
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
    values["api_keys"] = _api_keys(env)
    values.update(overrides)
    _cluster_url(values)
    settings = Settings(**values)  # type: ignore[arg-type]
    _check_scale_out(settings)
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


def _cluster_url(values: dict[str, object]) -> None:
    """``redis+cluster://`` turns cluster mode on and becomes a plain ``redis://`` URL."""
    url = values.get("redis_url")
    if not isinstance(url, str):
        return
    for scheme, plain in CLUSTER_SCHEMES.items():
        if url.startswith(scheme):
            values["redis_url"] = plain + url.removeprefix(scheme)
            values["redis_cluster"] = True


def _check_scale_out(settings: Settings) -> None:
    if settings.blob_backend is BlobBackend.S3 and settings.s3_bucket is None:
        raise SettingsError("BLOB_BACKEND=s3: S3_BUCKET must be set")
    if settings.tier_interval_s is not None and settings.tier_after_days is None:
        raise SettingsError("TIER_INTERVAL_S: set TIER_AFTER_DAYS too (the age to tier at)")
    if settings.tier_after_days is not None and settings.s3_bucket is None:
        raise SettingsError(
            "TIER_AFTER_DAYS: tiering moves outputs to S3, so S3_BUCKET must be set"
        )
    if settings.redis_cluster and settings.redis_url is None:
        raise SettingsError("REDIS_CLUSTER=true: REDIS_URL must name a cluster node")


def _api_keys(env: Mapping[str, str]) -> tuple[ApiKey, ...]:
    """Keys from ``API_KEYS`` and the file ``API_KEYS_FILE`` names (kept out of ``ps``)."""
    keys: tuple[ApiKey, ...] = ()
    for variable in ("API_KEYS", "API_KEYS_FILE"):
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        try:
            if variable == "API_KEYS_FILE":
                try:
                    raw = Path(raw).read_text(encoding="utf-8")
                except OSError as exc:
                    raise ValueError(f"cannot read {raw}: {exc.strerror}") from None
            keys += parse_api_keys(raw)
        except ValueError as exc:
            raise SettingsError(f"{variable}: {exc}") from None
    names = [key.name for key in keys]
    if len(set(names)) != len(names):
        raise SettingsError("API_KEYS / API_KEYS_FILE: a key name is defined twice")
    return keys


def _reason(exc: ValueError) -> str:
    text = str(exc)
    if text.startswith("invalid literal"):
        return "must be a whole number"
    if text.startswith("could not convert"):
        return "must be a number"
    return text
