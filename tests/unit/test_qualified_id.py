"""The qualified id (ADR 0032, decision 3): an evaluation's name outside the database."""

import pytest

from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT, TenantId, parse_qualified_id, qualified_id

ACME = TenantId("acme")


def test_the_default_tenants_name_is_the_bare_id() -> None:
    assert qualified_id(DEFAULT_TENANT, "eval_1") == "eval_1"
    assert parse_qualified_id("eval_1") == (DEFAULT_TENANT, EvaluationId("eval_1"))


def test_another_tenants_name_leads_with_the_tenant() -> None:
    assert qualified_id(ACME, "eval:1") == "acme/eval:1"
    assert parse_qualified_id("acme/eval:1") == (ACME, EvaluationId("eval:1"))


def test_a_default_id_named_like_a_tenant_stays_apart() -> None:
    assert qualified_id(DEFAULT_TENANT, "acme") != qualified_id(ACME, "acme")


@pytest.mark.parametrize("name", ["default/eval_1", "Acme/eval_1", "acme/", "/eval_1", "a/b/c"])
def test_names_it_never_makes_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        parse_qualified_id(name)
