"""One settings object, parsed and validated once at start.

A bad value stops the start with one line that names the variable.
"""

import os
import typing
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from infrastructure.crypto.keyring import KeyringError, load_keyring
from interfaces.settings.model import (
    AccessSettings,
    BlobBackend,
    CacheSettings,
    ChangeSettings,
    DatabaseSettings,
    EncryptionSettings,
    ExportSettings,
    FailoverSettings,
    FallbackBackend,
    Group,
    IdempotencySettings,
    LimitSettings,
    LogFormat,
    NatsSettings,
    ObservabilitySettings,
    RedisSettings,
    RetentionSettings,
    S3Settings,
    ServerSettings,
    Settings,
    StorageBackend,
    StorageSettings,
    TieringSettings,
    file_index_path,
    file_index_url,
)
from interfaces.settings.parsers import (
    CLUSTER_SCHEMES,
    MAX_PRESIGN_EXPIRY_S,
    Env,
    SettingsError,
    normalize_database_url,
    parse_api_keys,
)

__all__ = [
    "MAX_PRESIGN_EXPIRY_S",
    "AccessSettings",
    "BlobBackend",
    "CacheSettings",
    "ChangeSettings",
    "DatabaseSettings",
    "EncryptionSettings",
    "ExportSettings",
    "FailoverSettings",
    "FallbackBackend",
    "IdempotencySettings",
    "LimitSettings",
    "LogFormat",
    "NatsSettings",
    "ObservabilitySettings",
    "RedisSettings",
    "RetentionSettings",
    "S3Settings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "StorageBackend",
    "StorageSettings",
    "TieringSettings",
    "environment_names",
    "file_index_path",
    "file_index_url",
    "load_settings",
    "normalize_database_url",
    "parse_api_keys",
]


def _groups() -> Iterator[tuple[str, type[Group]]]:
    for field in msgspec.structs.fields(Settings):
        yield field.name, field.type


def _variables(group: type[Group]) -> Iterator[tuple[str, str, Env]]:
    """Each field of ``group`` with its variable's name and how it is read (its one ``Env``)."""
    hints = typing.get_type_hints(group, include_extras=True)
    for field in group.__struct_fields__:
        [env] = (
            extra for extra in getattr(hints[field], "__metadata__", ()) if isinstance(extra, Env)
        )
        yield field, env.name or group.PREFIX + field.upper(), env


def environment_names() -> list[str]:
    """Every environment variable the settings read, in the order of the fields."""
    return [
        name
        for _, group in _groups()
        for _, variable, env in _variables(group)
        for name in (variable, *env.also)
    ]


def load_settings(
    environ: Mapping[str, str] | None = None, **overrides: Mapping[str, Any]
) -> Settings:
    """Build settings from ``environ`` (default: the process environment) and overrides.

    ``overrides`` are keyed by group, each a mapping of its fields:
    ``load_settings({}, database={"url": url}, storage={"file_storage_path": path})``.
    """
    env = os.environ if environ is None else environ
    unknown = set(overrides) - set(Settings.__struct_fields__)
    if unknown:
        raise TypeError(f"no settings group named {', '.join(sorted(unknown))}")
    groups: dict[str, Group] = {}
    for name, group in _groups():
        values = _read(group, env)
        values.update(overrides.get(name, {}))
        groups[name] = group(**values)
    settings = _cluster_url(Settings(**groups))  # type: ignore[arg-type]
    _check(settings)
    if settings.storage.backend is StorageBackend.FILE:
        for name in ("DATABASE_URL", "MIGRATION_DATABASE_URL"):
            if name in env:
                raise SettingsError(
                    "STORAGE_BACKEND=file keeps its index under FILE_STORAGE_PATH/index: "
                    f"unset {name} (or use STORAGE_BACKEND=database)"
                )
        return settings.changed(
            database={"url": file_index_url(settings.storage.file_storage_path)},
            storage={"file_mirror": True},
        )
    return settings


def _read(group: type[Group], env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field, variable, spec in _variables(group):
        if spec.read is not None:
            values[field] = spec.read(env)
            continue
        raw = env.get(variable)
        if raw is None or (raw == "" and not spec.keep_empty):
            continue
        try:
            values[field] = spec.parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{variable}={raw!r}: {_reason(exc)}") from None
    return values


def _cluster_url(settings: Settings) -> Settings:
    """``redis+cluster://`` turns cluster mode on and becomes a plain ``redis://`` URL."""
    url = settings.redis.url
    for scheme, plain in CLUSTER_SCHEMES.items():
        if url is not None and url.startswith(scheme):
            plain_url = plain + url.removeprefix(scheme)
            return settings.changed(redis={"url": plain_url, "cluster": True})
    return settings


def _check(settings: Settings) -> None:
    """The rules between fields, after each field's own."""
    storage, s3, tiering = settings.storage, settings.s3, settings.tiering
    if storage.blob_backend is BlobBackend.S3 and not s3.configured:
        raise SettingsError("BLOB_BACKEND=s3: S3_BUCKET must be set")
    if tiering.interval_s is not None and tiering.after_days is None:
        raise SettingsError("TIER_INTERVAL_S: set TIER_AFTER_DAYS too (the age to tier at)")
    if tiering.after_days is not None and not s3.configured:
        raise SettingsError(
            "TIER_AFTER_DAYS: tiering moves outputs to S3, so S3_BUCKET must be set"
        )
    encryption = settings.encryption
    if encryption.enabled and encryption.keys_file is None:
        raise SettingsError("ENCRYPTION=on: ENCRYPTION_KEYS_FILE must name the keys file")
    if encryption.keys_file is not None and settings.export.to is not None:
        raise SettingsError(
            "EXPORT_TO: the Parquet warehouse is refused with ENCRYPTION_KEYS_FILE set "
            "(it reads the database's columns as stored, which are sealed)"
        )
    if encryption.shredding and not encryption.enabled:
        raise SettingsError("ENCRYPTION_SHREDDING: set ENCRYPTION=on too")
    if encryption.metadata_keys and not encryption.enabled:
        raise SettingsError("ENCRYPTED_METADATA_KEYS: set ENCRYPTION=on too")
    if settings.subjects.metadata_key in encryption.metadata_keys:
        raise SettingsError(
            f"ENCRYPTED_METADATA_KEYS: {settings.subjects.metadata_key!r} is "
            "SUBJECT_METADATA_KEY, which erasure finds records by: it cannot be sealed"
        )
    if encryption.keys_file is not None:
        try:
            load_keyring(encryption.keys_file)
        except KeyringError as exc:
            raise SettingsError(str(exc)) from None
    if settings.redis.cluster and settings.redis.url is None:
        raise SettingsError("REDIS_CLUSTER=true: REDIS_URL must name a cluster node")
    if storage.compression_threshold > storage.large_file_threshold:
        raise SettingsError(
            "COMPRESSION_THRESHOLD: must not exceed LARGE_FILE_THRESHOLD "
            f"({storage.compression_threshold} > {storage.large_file_threshold})"
        )


def _reason(exc: ValueError) -> str:
    text = str(exc)
    if text.startswith("invalid literal"):
        return "must be a whole number"
    if text.startswith("could not convert"):
        return "must be a number"
    return text
