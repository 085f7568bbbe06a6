"""The settings, nested by concern; each field carries the variable and parser it is read with.

A variable's name is its group's ``PREFIX`` followed by the field's name upper-cased
(``database.pool_size`` is ``DB_POOL_SIZE``, ``server.port`` is ``PORT``). The names the
spec fixed otherwise are spelled out with ``Env(name=...)``: ``DATABASE_URL``,
``STORAGE_BACKEND``, ``ENABLE_CACHING`` and ``LOG_TAIL_BYTES``.
"""

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar

import msgspec

from application.ports.warehouse import Table
from application.services.api_keys import ApiKey, served_tenants
from domain.limits import InputLimits
from domain.payload import StorageThresholds
from domain.tenancy import DEFAULT_TENANT, TenantId
from interfaces.settings import parsers as p
from interfaces.settings.parsers import Env


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

PositiveInt = Annotated[int, Env(p.positive_int)]
NonNegativeInt = Annotated[int, Env(p.non_negative_int)]
PositiveFloat = Annotated[float, Env(p.positive_float)]
Flag = Annotated[bool, Env(p.parse_bool)]


class Group(msgspec.Struct, frozen=True, kw_only=True):
    """One concern's settings; ``PREFIX`` starts the names of its variables."""

    PREFIX: ClassVar[str] = ""


def file_index_path(file_storage_path: Path) -> Path:
    """Where ``STORAGE_BACKEND=file`` keeps the index of its records (SQLite, rebuildable)."""
    return file_storage_path / "index" / "records.sqlite3"


def file_index_url(file_storage_path: Path) -> str:
    return f"sqlite+aiosqlite:///{file_index_path(file_storage_path)}"


class DatabaseSettings(Group, frozen=True, kw_only=True):
    PREFIX: ClassVar[str] = "DB_"

    url: Annotated[str, Env(p.normalize_database_url, name="DATABASE_URL")] = (
        f"sqlite+aiosqlite:///{DEFAULT_DATA_DIR / 'storage.db'}"
    )
    # The role that owns the tables: ``migrate`` and the planner statistics' ``ANALYZE``
    # run as it (ADR 0032); None: ``url``'s role does both.
    migration_url: Annotated[
        str | None, Env(p.normalize_database_url, name="MIGRATION_DATABASE_URL")
    ] = None
    pool_size: PositiveInt = 10
    statement_timeout_ms: PositiveInt = 30_000
    connect_timeout_s: PositiveFloat = 10.0
    # Seconds between two checks of the planner's statistics (ANALYZE of the tables that
    # changed by 50 rows + 10 % since): PostgreSQL only; 0 turns the check off.
    analyze_interval_s: NonNegativeInt = 60

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")

    @property
    def owner_url(self) -> str:
        """Where schema changes and ``ANALYZE`` go: ``MIGRATION_DATABASE_URL`` or ``url``."""
        return self.migration_url or self.url


class RedisSettings(Group, frozen=True, kw_only=True):
    PREFIX: ClassVar[str] = "REDIS_"

    url: Annotated[str | None, Env(p.redis_url)] = None  # None: cache and registry in-process
    key_prefix: Annotated[str, Env(keep_empty=True)] = ""
    timeout_s: PositiveFloat = 0.5
    cluster: Flag = False
    # The tenant of the platform's API key: its worker's keys (``eval:<id>:running``,
    # ``running_evaluations``, ``logs:<id>:latest``, ADR 0014) serve this tenant only,
    # every other tenant's are qualified (ADR 0032).
    platform_tenant: Annotated[TenantId, Env(p.tenant, name="PLATFORM_TENANT")] = DEFAULT_TENANT


class CacheSettings(Group, frozen=True, kw_only=True):
    PREFIX: ClassVar[str] = "CACHE_"

    enabled: Annotated[bool, Env(p.parse_bool, name="ENABLE_CACHING")] = True
    ttl: PositiveInt = 3600
    # Pre-load the most recently changed records into the cache at start, in the background.
    warm_on_start: Flag = True
    warm_count: PositiveInt = 1000
    # The latest log bytes kept per running evaluation for tailing (``logs:{<id>}:latest``).
    log_tail_bytes: Annotated[int, Env(p.positive_int, name="LOG_TAIL_BYTES")] = 256 * 1024


class StorageSettings(Group, frozen=True, kw_only=True):
    backend: Annotated[StorageBackend, Env(p.choice(StorageBackend), name="STORAGE_BACKEND")] = (
        StorageBackend.DATABASE
    )
    fallback_backend: Annotated[FallbackBackend, Env(p.choice(FallbackBackend))] = (
        FallbackBackend.FILE
    )
    file_storage_path: Annotated[Path, Env(Path)] = DEFAULT_DATA_DIR / "files"
    blob_backend: Annotated[BlobBackend, Env(p.choice(BlobBackend))] = BlobBackend.FILE
    large_file_threshold: NonNegativeInt = 102_400
    compression_threshold: NonNegativeInt = 10_240
    preview_size: NonNegativeInt = 1_000
    # Every committed record, event and log piece also copied under FILE_STORAGE_PATH, so
    # ``rebuild-database --from`` can restore a lost database.
    file_mirror: Flag = False
    # The last characters of a blob-stored output or error kept for search; 0: none.
    search_tail_size: NonNegativeInt = 1_000

    @property
    def thresholds(self) -> StorageThresholds:
        return StorageThresholds(
            large_file_threshold=self.large_file_threshold,
            compression_threshold=self.compression_threshold,
            preview_size=self.preview_size,
            tail_size=self.search_tail_size,
        )


class LimitSettings(Group, frozen=True, kw_only=True):
    PREFIX: ClassVar[str] = "MAX_"

    request_bytes: PositiveInt = 64 * 1024 * 1024
    upload_bytes: PositiveInt = 10 * 1024**3
    metadata_bytes: PositiveInt = 64 * 1024
    metadata_depth: PositiveInt = 16
    event_message_bytes: PositiveInt = 64 * 1024
    log_chunk_bytes: PositiveInt = 1024 * 1024
    list_limit: PositiveInt = 1000
    # Deeper offsets cost a walk past every skipped row; deeper pages go by ``cursor``.
    list_offset: PositiveInt = 10_000

    @property
    def inputs(self) -> InputLimits:
        return InputLimits(
            metadata_bytes=self.metadata_bytes,
            metadata_depth=self.metadata_depth,
            event_message_bytes=self.event_message_bytes,
            log_chunk_bytes=self.log_chunk_bytes,
            list_limit=self.list_limit,
            list_offset=self.list_offset,
        )


class S3Settings(Group, frozen=True, kw_only=True):
    """Scale-out (docs/scale-out.md): blobs in S3, tiering's target, presigned URLs."""

    PREFIX: ClassVar[str] = "S3_"

    endpoint_url: Annotated[str | None, Env(p.http_url)] = None  # None: AWS S3 itself
    bucket: Annotated[str | None, Env(p.bucket)] = None
    prefix: Annotated[str, Env(p.s3_prefix)] = ""
    region: Annotated[str | None, Env()] = None  # None: AWS_REGION / AWS_DEFAULT_REGION / profile
    create_bucket: Flag = True
    presign_expiry_s: Annotated[int, Env(p.presign_expiry)] = 3600

    @property
    def configured(self) -> bool:
        """Whether an S3 bucket is set (blob backend, tiering target or presigned URLs)."""
        return self.bucket is not None


class ServerSettings(Group, frozen=True, kw_only=True):
    host: Annotated[str, Env()] = "127.0.0.1"
    port: Annotated[int, Env(p.port)] = 8082
    workers: PositiveInt = 1
    log_level: Annotated[str, Env(p.log_level)] = "INFO"
    log_format: Annotated[LogFormat, Env(p.choice(LogFormat))] = LogFormat.CONSOLE


class AccessSettings(Group, frozen=True, kw_only=True):
    api_keys: Annotated[tuple[ApiKey, ...], Env(read=p.read_api_keys, also=("API_KEYS_FILE",))] = ()
    docs_public: Flag = True
    cors_origins: Annotated[tuple[str, ...], Env(p.origins)] = ()

    @property
    def tenants(self) -> tuple[TenantId, ...]:
        """The tenants this deployment serves (``default`` and those of ``API_KEYS``)."""
        return served_tenants(self.api_keys)


class RetentionSettings(Group, frozen=True, kw_only=True):
    PREFIX: ClassVar[str] = "RETENTION_"

    days: Annotated[int | None, Env(p.positive_int)] = None  # None: no periodic cleanup
    interval_s: PositiveFloat = 3600.0


class TieringSettings(Group, frozen=True, kw_only=True):
    PREFIX: ClassVar[str] = "TIER_"

    after_days: Annotated[int | None, Env(p.positive_int)] = None  # default age of `tier`
    # With TIER_AFTER_DAYS: the service tiers by itself, at start and every this many seconds.
    interval_s: Annotated[float | None, Env(p.positive_float)] = None


class FailoverSettings(Group, frozen=True, kw_only=True):
    PREFIX: ClassVar[str] = "FAILOVER_"

    # The longest wait between probes of an unavailable primary (the backoff's cap).
    probe_interval_s: PositiveFloat = 5.0


class IdempotencySettings(Group, frozen=True, kw_only=True):
    PREFIX: ClassVar[str] = "IDEMPOTENCY_"

    # How long the answer of an ``Idempotency-Key`` request is kept for its retries.
    ttl_s: PositiveInt = 24 * 3600
    # How long a key whose request died (no answer) keeps refusing retries with a 409.
    lease_s: PositiveInt = 300


class ChangeSettings(Group, frozen=True, kw_only=True):
    """The change feed (``GET /changes``) and its streams."""

    PREFIX: ClassVar[str] = "CHANGES_"

    # How far back a cursor still resumes; an older one is answered 410.
    retention_s: PositiveInt = 7 * 24 * 3600
    # How often a worker with open streams reads the feed for new changes.
    poll_ms: PositiveInt = 100
    # A comment line on an idle stream this often, so proxies keep it open.
    keepalive_s: PositiveFloat = 15.0


class NatsSettings(Group, frozen=True, kw_only=True):
    """The relay of the change feed to NATS JetStream (``storage-service relay``)."""

    PREFIX: ClassVar[str] = "NATS_"

    # With a URL the service relays the feed itself, in the background; None: no relay.
    url: Annotated[str | None, Env(p.nats_urls)] = None
    stream: Annotated[str, Env()] = "CRUCIBLE_CHANGES"
    subject: Annotated[str, Env()] = "crucible.changes"


class ExportSettings(Group, frozen=True, kw_only=True):
    """The scheduled warehouse export (``storage-service export --format parquet``)."""

    PREFIX: ClassVar[str] = "EXPORT_"

    # A directory or s3://bucket/prefix: the service exports there by itself; None: never.
    to: Annotated[str | None, Env(p.export_destination)] = None
    interval_s: PositiveFloat = 3600.0
    # What each round writes; adding one the last round lacked makes the next a full run.
    tables: Annotated[tuple[Table, ...], Env(p.export_tables)] = (Table.EVALUATIONS,)


class EncryptionSettings(Group, frozen=True, kw_only=True):
    """Encryption at rest (ADR 0031, docs/security.md)."""

    PREFIX: ClassVar[str] = "ENCRYPTION_"

    # New blobs are sealed; blobs stored in clear before are still read.
    enabled: Annotated[bool, Env(p.parse_bool, name="ENCRYPTION")] = False
    # The key-encryption keys (``storage-service new-key --out FILE``); the last is active.
    # Set without ENCRYPTION=on, sealed blobs are still read but new ones are stored in clear.
    keys_file: Annotated[Path | None, Env(Path)] = None
    # Record metadata keys whose values are sealed in the database (ENCRYPTION=on).
    metadata_keys: Annotated[tuple[str, ...], Env(p.names, name="ENCRYPTED_METADATA_KEYS")] = ()
    # Crypto-shredding (ADR 0033): copies outside the database sealed under a key per
    # evaluation, kept in the database's key table and destroyed by erasure. Off by
    # default: the key table must then be backed up apart from the data, or the mirror
    # cannot rebuild a lost database.
    shredding: Annotated[bool, Env(p.parse_bool)] = False


class SubjectSettings(Group, frozen=True, kw_only=True):
    """Data subjects: erasure and export by subject (``/subjects``, ``erase``)."""

    PREFIX: ClassVar[str] = "SUBJECT_"

    # The metadata key whose string value names an evaluation's data subject.
    metadata_key: Annotated[str, Env(p.metadata_key)] = "subject"


class ObservabilitySettings(Group, frozen=True, kw_only=True):
    # Spans go to this OTLP collector; None: no tracing at all (nothing installed).
    # The other OTEL_* variables keep their SDK meaning (interfaces/http/tracing.py).
    otlp_endpoint: Annotated[str | None, Env(p.http_url, name="OTEL_EXPORTER_OTLP_ENDPOINT")] = None


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    cache: CacheSettings = msgspec.field(default_factory=CacheSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    s3: S3Settings = msgspec.field(default_factory=S3Settings)
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    access: AccessSettings = msgspec.field(default_factory=AccessSettings)
    retention: RetentionSettings = msgspec.field(default_factory=RetentionSettings)
    tiering: TieringSettings = msgspec.field(default_factory=TieringSettings)
    failover: FailoverSettings = msgspec.field(default_factory=FailoverSettings)
    idempotency: IdempotencySettings = msgspec.field(default_factory=IdempotencySettings)
    observability: ObservabilitySettings = msgspec.field(default_factory=ObservabilitySettings)
    encryption: EncryptionSettings = msgspec.field(default_factory=EncryptionSettings)
    changes: ChangeSettings = msgspec.field(default_factory=ChangeSettings)
    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    export: ExportSettings = msgspec.field(default_factory=ExportSettings)
    subjects: SubjectSettings = msgspec.field(default_factory=SubjectSettings)

    def changed(self, **groups: Mapping[str, Any]) -> "Settings":
        """A copy with some fields changed, keyed by group: ``changed(cache={"ttl": 5})``."""
        return msgspec.structs.replace(
            self,
            **{
                name: msgspec.structs.replace(getattr(self, name), **fields)
                for name, fields in groups.items()
            },
        )

    def for_scratch(self) -> "Settings":
        """A journal view's deployment: memory records and blobs, no cache, no journal,
        the same thresholds and limits."""
        return self.changed(
            storage={
                "backend": StorageBackend.MEMORY,
                "fallback_backend": FallbackBackend.NONE,
                "blob_backend": BlobBackend.FILE,
            },
            redis={"url": None},
            cache={"enabled": False},
            s3={"bucket": None},
        )
