from pathlib import Path

import pytest

from interfaces.settings import SettingsError, StorageBackend, load_settings
from tests.keys import write_keys_file


def test_defaults_are_the_embedded_setup() -> None:
    settings = load_settings({})
    assert settings.database.url.startswith("sqlite+aiosqlite:///")
    assert settings.redis.url is None
    assert settings.storage.backend is StorageBackend.DATABASE
    storage = settings.storage
    assert (storage.large_file_threshold, storage.compression_threshold) == (102_400, 10_240)
    assert (storage.preview_size, settings.cache.ttl, settings.server.port) == (1000, 3600, 8082)
    assert settings.server.host == "127.0.0.1"


def test_spec_forms_are_accepted() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://crucible:password@postgres:5432/crucible",
            "REDIS_URL": "redis://redis:6379",
            "ENABLE_CACHING": "false",
            "FILE_STORAGE_PATH": "/app/data",
            "LARGE_FILE_THRESHOLD": "2048",
            "COMPRESSION_THRESHOLD": "1024",
            "STORAGE_BACKEND": "memory",
            "FALLBACK_BACKEND": "memory",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.database.url == "postgresql+asyncpg://crucible:password@postgres:5432/crucible"
    assert settings.redis.url == "redis://redis:6379"
    assert settings.cache.enabled is False
    assert settings.storage.file_storage_path == Path("/app/data")
    assert settings.storage.thresholds.large_file_threshold == 2048
    assert settings.server.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CACHE_TTL", "abc"),
        ("CACHE_TTL", "0"),
        ("CACHE_WARM_COUNT", "0"),
        ("CACHE_WARM_ON_START", "sometimes"),
        ("PORT", "70000"),
        ("ENABLE_CACHING", "maybe"),
        ("STORAGE_BACKEND", "tape"),
        ("DATABASE_URL", "mysql://x"),
        ("REDIS_URL", "http://x"),
        ("LOG_LEVEL", "LOUD"),
        ("LARGE_FILE_THRESHOLD", "-1"),
        ("SUBJECT_METADATA_KEY", 'user"id'),
        ("SUBJECT_METADATA_KEY", "user id"),
        ("SUBJECT_METADATA_KEY", "k" * 65),
    ],
)
def test_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({variable: value})
    message = str(info.value)
    assert message.startswith(variable)
    assert "\n" not in message


def test_the_file_backend_keeps_its_index_in_the_tree_and_mirrors_every_record() -> None:
    settings = load_settings({"STORAGE_BACKEND": "file", "FILE_STORAGE_PATH": "/srv/tree"})
    assert settings.database.url == "sqlite+aiosqlite:////srv/tree/index/records.sqlite3"
    assert settings.storage.file_mirror is True
    assert load_settings({}).storage.file_mirror is False


def test_the_file_backend_refuses_a_database_url_it_would_not_use() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"STORAGE_BACKEND": "file", "DATABASE_URL": "postgresql://db/x"})
    assert str(info.value).startswith("STORAGE_BACKEND=file") and "DATABASE_URL" in str(info.value)


def test_compression_above_large_threshold_is_refused() -> None:
    with pytest.raises(SettingsError, match="COMPRESSION_THRESHOLD"):
        load_settings({"COMPRESSION_THRESHOLD": "200000"})


def test_cache_warming_defaults_and_overrides() -> None:
    assert load_settings({}).cache.warm_on_start is True
    assert load_settings({}).cache.warm_count == 1000
    changed = load_settings({"CACHE_WARM_ON_START": "false", "CACHE_WARM_COUNT": "50"})
    assert (changed.cache.warm_on_start, changed.cache.warm_count) == (False, 50)


def test_log_tail_size_defaults_to_256_kib_and_is_checked() -> None:
    assert load_settings({}).cache.log_tail_bytes == 256 * 1024
    assert load_settings({"LOG_TAIL_BYTES": "4096"}).cache.log_tail_bytes == 4096
    with pytest.raises(SettingsError, match=r"^LOG_TAIL_BYTES='0': must be a positive integer$"):
        load_settings({"LOG_TAIL_BYTES": "0"})


def test_overrides_are_keyed_by_group() -> None:
    settings = load_settings({"CACHE_TTL": "5"}, cache={"warm_count": 3}, database={"pool_size": 2})
    assert (settings.cache.ttl, settings.cache.warm_count, settings.database.pool_size) == (5, 3, 2)
    with pytest.raises(TypeError):
        load_settings({}, caches={"ttl": 1})


def test_the_subject_metadata_key_defaults_to_subject_and_takes_a_dotted_name() -> None:
    assert load_settings({}).subjects.metadata_key == "subject"
    assert load_settings({"SUBJECT_METADATA_KEY": "gdpr.user_id"}).subjects.metadata_key == (
        "gdpr.user_id"
    )


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"ENCRYPTION": "on"}, "ENCRYPTION_KEYS_FILE"),
        ({"ENCRYPTION_KEYS_FILE": "/nonexistent/keys"}, "ENCRYPTION_KEYS_FILE"),
        ({"ENCRYPTED_METADATA_KEYS": "secret"}, "ENCRYPTED_METADATA_KEYS"),
        (
            {"ENCRYPTION": "on", "ENCRYPTED_METADATA_KEYS": "subject", "KEYS": ""},
            "SUBJECT_METADATA_KEY",
        ),
    ],
)
def test_encryption_settings_refused_name_the_variable(
    environ: dict[str, str], named: str, tmp_path: Path
) -> None:
    keys = write_keys_file(tmp_path / "keys")
    if "KEYS" in environ:
        environ = {**environ, "ENCRYPTION_KEYS_FILE": str(keys)}
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)


def test_a_keys_file_with_a_bad_line_is_refused_without_showing_a_key(tmp_path: Path) -> None:
    keys = write_keys_file(tmp_path / "keys")
    secret = keys.read_text().split()[1]
    keys.write_text(keys.read_text() + f"k2 {secret[:-4]}\n")
    with pytest.raises(SettingsError, match="line 2") as refused:
        load_settings({"ENCRYPTION": "on", "ENCRYPTION_KEYS_FILE": str(keys)})
    assert secret[:10] not in str(refused.value)
