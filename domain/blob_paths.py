"""Where an evaluation's blobs and mirrored files live (ADR 0032).

The default tenant's evaluation ``<id>`` lives under ``evaluations/<id>/``, as before
tenants, so an upgrade moves nothing; another tenant's under
``tenants/<tenant>/evaluations/<id>/``. A default path starts with ``evaluations/``, so no
default id (``tenants`` included) meets another tenant's.
"""

from typing import NamedTuple

from domain.tenancy import DEFAULT_TENANT, TenantId, parse_tenant

EVALUATIONS = "evaluations"
TENANTS = "tenants"


def evaluations_prefix(tenant: TenantId) -> str:
    """``evaluations/`` or ``tenants/<tenant>/evaluations/``: every evaluation of ``tenant``."""
    if tenant == DEFAULT_TENANT:
        return f"{EVALUATIONS}/"
    return f"{TENANTS}/{tenant}/{EVALUATIONS}/"


def evaluation_prefix(tenant: TenantId, evaluation_id: str) -> str:
    """``…evaluations/<id>/``: every blob and mirrored file of one evaluation."""
    return f"{evaluations_prefix(tenant)}{evaluation_id}/"


class BlobPath(NamedTuple):
    """A path under an evaluation's directory: whose, and the rest (``name``, which may
    hold ``/``)."""

    tenant: TenantId
    evaluation_id: str
    name: str


def parse_blob_path(key: str) -> BlobPath | None:
    """The evaluation ``key`` lies under (``None``: none, or a layout this never makes,
    such as ``tenants/default/…``)."""
    parts = key.split("/", 4)
    if len(parts) >= 3 and parts[0] == EVALUATIONS:
        rest = "/".join(parts[2:])
        return BlobPath(DEFAULT_TENANT, parts[1], rest) if parts[1] and rest else None
    if len(parts) == 5 and parts[0] == TENANTS and parts[2] == EVALUATIONS:
        try:
            tenant = parse_tenant(parts[1])
        except ValueError:
            return None
        if tenant == DEFAULT_TENANT or not parts[3] or not parts[4]:
            return None
        return BlobPath(tenant, parts[3], parts[4])
    return None
