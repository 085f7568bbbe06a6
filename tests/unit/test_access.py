"""API keys, scopes and input limits: parsing, verification and the rules between them."""

from pathlib import Path

import pytest

from application.services.api_keys import ApiKeyVerifier
from domain.access import AccessScope, Caller
from domain.errors import InvalidTextError
from domain.limits import InputLimits, json_depth
from domain.tenancy import DEFAULT_TENANT, TenantId
from interfaces.settings import SettingsError, load_settings, parse_api_keys

SECRET = "s3cret-value-0123456789"


def test_each_scope_grants_itself_and_the_ones_below() -> None:
    read, write, admin = AccessScope.READ, AccessScope.WRITE, AccessScope.ADMIN
    assert [admin.grants(s) for s in (read, write, admin)] == [True, True, True]
    assert [write.grants(s) for s in (read, write, admin)] == [True, True, False]
    assert [read.grants(s) for s in (read, write, admin)] == [True, False, False]


def test_keys_parse_and_verify_to_their_caller() -> None:
    keys = parse_api_keys(f"ci:{SECRET}:write,\n ops:{SECRET}x:ADMIN")
    verifier = ApiKeyVerifier(keys)

    assert verifier.enabled
    assert verifier.verify(SECRET) is not None
    assert verifier.verify(SECRET).name == "ci"  # type: ignore[union-attr]
    assert verifier.verify(SECRET + "x").scope is AccessScope.ADMIN  # type: ignore[union-attr]
    assert verifier.verify(SECRET[:-1]) is None
    assert verifier.verify("") is None
    assert verifier.named("ops") is keys[1]
    assert verifier.named("nobody") is None
    assert not ApiKeyVerifier(()).enabled


def test_a_key_without_a_tenant_belongs_to_the_default_one() -> None:
    keys = parse_api_keys(f"gw:{SECRET}:write,acme-ci:{SECRET}x:read: acme-1 ")
    verifier = ApiKeyVerifier(keys)

    assert [key.tenant for key in keys] == [DEFAULT_TENANT, "acme-1"]
    assert verifier.verify(SECRET) == Caller(name="gw", scope=AccessScope.WRITE)
    assert verifier.verify(SECRET).tenant == "default"  # type: ignore[union-attr]
    assert verifier.verify(SECRET + "x") == Caller(
        name="acme-ci", scope=AccessScope.READ, tenant=TenantId("acme-1")
    )
    assert "acme-1" in repr(keys[1])


@pytest.mark.parametrize("tenant", ["Acme", "-acme", "ac/me", "a" * 64, "", "acme corp"])
def test_a_malformed_tenant_is_refused_naming_the_key(tenant: str) -> None:
    with pytest.raises(ValueError, match=r"key 'ci': a tenant is 1 to 63 of") as caught:
        parse_api_keys(f"ci:{SECRET}:read:{tenant}")
    assert SECRET not in str(caught.value)


def test_five_parts_are_no_key() -> None:
    with pytest.raises(ValueError, match=r"name:secret:scope\[:tenant\]"):
        parse_api_keys(f"ci:{SECRET}:read:acme:more")


def test_every_tenant_a_key_names_is_served_beside_the_default_one() -> None:
    settings = load_settings(
        {"API_KEYS": f"gw:{SECRET}:write,acme:{SECRET}x:read:acme,zed:{SECRET}y:read:beta"}
    )

    assert [key.tenant for key in settings.access.api_keys] == [DEFAULT_TENANT, "acme", "beta"]
    assert settings.access.tenants == (DEFAULT_TENANT, "acme", "beta")
    assert load_settings({"API_KEYS": f"acme:{SECRET}x:read:acme"}).access.tenants == (
        DEFAULT_TENANT,
        "acme",
    )


def test_the_secret_is_not_kept_nor_printed() -> None:
    (key,) = parse_api_keys(f"ci:{SECRET}:read")
    assert SECRET not in repr(key)
    assert SECRET.encode() not in key.digest


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (f"ci:{SECRET}", "name:secret:scope"),
        (f"ci:{SECRET}:root", "read, write or admin"),
        ("ci:short:read", "at least 16"),
        (f"c i:{SECRET}:read", "letters, digits"),
        (f"ci:{SECRET}:read,ci:{SECRET}y:read", "defined twice"),
    ],
)
def test_bad_keys_stop_the_start_without_echoing_the_secret(raw: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"API_KEYS": raw})
    assert message in str(caught.value)
    assert "API_KEYS" in str(caught.value)
    assert SECRET not in str(caught.value) and "short" not in str(caught.value)


def test_keys_load_from_a_file_and_add_to_the_variable(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# operators\nops:{SECRET}:admin\n\nci:{SECRET}z:write\n")

    settings = load_settings({"API_KEYS_FILE": str(keys_file), "API_KEYS": f"ro:{SECRET}q:read"})

    assert [(k.name, k.scope.value) for k in settings.access.api_keys] == [
        ("ro", "read"),
        ("ops", "admin"),
        ("ci", "write"),
    ]
    with pytest.raises(SettingsError, match="API_KEYS_FILE: cannot read"):
        load_settings({"API_KEYS_FILE": str(tmp_path / "missing")})


def test_cors_origins_must_be_origins() -> None:
    settings = load_settings({"CORS_ORIGINS": "https://a.example, http://b.example:8080"})
    assert settings.access.cors_origins == ("https://a.example", "http://b.example:8080")
    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        load_settings({"CORS_ORIGINS": "javascript:alert(1)"})


@pytest.mark.parametrize(
    ("value", "depth"),
    [(1, 0), ({}, 1), ([], 1), ({"a": [1, {"b": None}]}, 3), ([[[[]]]], 4)],
)
def test_json_depth(value: object, depth: int) -> None:
    assert json_depth(value) == depth


def test_json_depth_survives_hostile_nesting() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    assert json_depth(deep) == 100_001


def test_limits_name_the_field() -> None:
    limits = InputLimits(metadata_bytes=20, metadata_depth=2, log_chunk_bytes=4)

    limits.check_json("metadata", {"a": {"b": 1}})
    with pytest.raises(InvalidTextError, match="2 levels") as deep:
        limits.check_json("metadata", {"a": {"b": [1]}})
    with pytest.raises(InvalidTextError, match="20 bytes"):
        limits.check_json("metadata", {"a": "x" * 20})
    with pytest.raises(InvalidTextError, match="4 bytes"):
        limits.check_text("content", "ééé", limits.log_chunk_bytes)
    assert deep.value.field == "metadata"
