"""Tenants: whose evaluations a caller sees (ADR 0032).

A tenant name becomes part of storage names (``<tenant>/<id>`` outside the database),
so it is strict: lowercase letters, digits, ``_`` and ``-``, starting with a letter or
digit, at most 63 characters; never ``/`` or ``:``, which those names use as separators.
"""

import re
from typing import NewType

from domain.identifiers import EvaluationId, parse_evaluation_id

TenantId = NewType("TenantId", str)

DEFAULT_TENANT = TenantId("default")
_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def parse_tenant(value: str) -> TenantId:
    """``value`` as a :class:`TenantId`, or ``ValueError`` saying what is wrong with it."""
    if not _TENANT.fullmatch(value):
        raise ValueError("a tenant is 1 to 63 of a-z 0-9 _ -, starting with a letter or a digit")
    return TenantId(value)


def qualified_id(tenant: TenantId, evaluation_id: str) -> str:
    """An evaluation's name outside the database: its id for the default tenant,
    ``<tenant>/<id>`` for the others, so the default tenant's keys, blobs and files keep
    the names they had before tenants (an id holds no ``/``, a tenant neither ``/`` nor
    ``:``, so two tenants' names never meet)."""
    return evaluation_id if tenant == DEFAULT_TENANT else f"{tenant}/{evaluation_id}"


def parse_qualified_id(value: str) -> tuple[TenantId, EvaluationId]:
    """The tenant and id ``qualified_id`` made ``value`` of; ``ValueError`` for anything
    it never makes (``default/<id>`` included: the default tenant's name is the bare id)."""
    tenant, separator, evaluation_id = value.rpartition("/")
    if not separator:
        return DEFAULT_TENANT, parse_evaluation_id(value)
    parsed = parse_tenant(tenant)
    if parsed == DEFAULT_TENANT:
        raise ValueError("the default tenant's evaluations are named by their bare id")
    return parsed, parse_evaluation_id(evaluation_id)
