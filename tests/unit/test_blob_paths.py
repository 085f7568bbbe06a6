"""Where an evaluation's files live: the default tenant's as before tenants, another's under
``tenants/<tenant>/`` (ADR 0032), and back from a path to its tenant and id."""

import pytest

from domain.blob_paths import BlobPath, evaluation_prefix, evaluations_prefix, parse_blob_path
from domain.tenancy import DEFAULT_TENANT, TenantId

ACME = TenantId("acme")


def test_the_default_tenants_paths_are_those_before_tenants() -> None:
    assert evaluations_prefix(DEFAULT_TENANT) == "evaluations/"
    assert evaluation_prefix(DEFAULT_TENANT, "e-1") == "evaluations/e-1/"


def test_another_tenants_paths_are_under_tenants() -> None:
    assert evaluations_prefix(ACME) == "tenants/acme/evaluations/"
    assert evaluation_prefix(ACME, "e-1") == "tenants/acme/evaluations/e-1/"


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("evaluations/e-1/output.ab.txt", BlobPath(DEFAULT_TENANT, "e-1", "output.ab.txt")),
        ("evaluations/tenants/metadata.json", BlobPath(DEFAULT_TENANT, "tenants", "metadata.json")),
        ("tenants/acme/evaluations/e-1/log.txt", BlobPath(ACME, "e-1", "log.txt")),
        ("tenants/acme/evaluations/e-1/a/b", BlobPath(ACME, "e-1", "a/b")),
    ],
)
def test_a_path_names_its_tenant_and_evaluation(key: str, parsed: BlobPath) -> None:
    assert parse_blob_path(key) == parsed


@pytest.mark.parametrize(
    "key",
    [
        "evaluations/e-1",
        "evaluations//x",
        "tenants/default/evaluations/e-1/log.txt",  # the default tenant's are never there
        "tenants/Acme/evaluations/e-1/log.txt",
        "tenants/acme/other/e-1/log.txt",
        "tenants/acme/evaluations/e-1",
        "index/evaluations.db",
        "",
    ],
)
def test_a_path_of_no_evaluation_is_none(key: str) -> None:
    assert parse_blob_path(key) is None


def test_a_default_id_named_tenants_meets_no_tenant() -> None:
    default = evaluation_prefix(DEFAULT_TENANT, "tenants")
    assert not evaluation_prefix(ACME, "x").startswith(default)
    assert parse_blob_path(default + "metadata.json") == BlobPath(
        DEFAULT_TENANT, "tenants", "metadata.json"
    )
