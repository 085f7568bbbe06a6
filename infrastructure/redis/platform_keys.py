"""The platform's Redis names (ADR 0014), and the names of the tenants it does not serve
(ADR 0032).

The platform's storage worker writes ``eval:<id>:running``, ``running_evaluations`` and
``logs:<id>:latest`` for the evaluations of one tenant, the tenant of its API key
(``PLATFORM_TENANT``), so those names serve that tenant only. Every other tenant's are
qualified, ``eval:<tenant>/<id>:running``, ``running_evaluations:{<tenant>}`` and
``running_evaluations:{<tenant>}:state``, ``logs:<tenant>/<id>:latest``: names no worker
writes. The braces keep a tenant named ``state`` off the platform's state hash (a tenant
holds no brace) and put one tenant's set and state in one Redis Cluster slot.
"""

from dataclasses import dataclass

from domain.tenancy import DEFAULT_TENANT, TenantId

RUNNING_SET = "running_evaluations"
RUNNING_STATE = "running_evaluations:state"


@dataclass(frozen=True, slots=True)
class PlatformKeys:
    """Key names (before the deployment's prefix) of each tenant, given the platform's."""

    platform_tenant: TenantId = DEFAULT_TENANT

    def name(self, tenant: TenantId, evaluation_id: str) -> str:
        """The id for the platform's tenant, ``<tenant>/<id>`` for every other one."""
        return evaluation_id if tenant == self.platform_tenant else f"{tenant}/{evaluation_id}"

    def running_entry(self, tenant: TenantId, evaluation_id: str) -> str:
        return f"eval:{self.name(tenant, evaluation_id)}:running"

    def running_set(self, tenant: TenantId) -> str:
        return RUNNING_SET if tenant == self.platform_tenant else f"{RUNNING_SET}:{{{tenant}}}"

    def running_state(self, tenant: TenantId) -> str:
        if tenant == self.platform_tenant:
            return RUNNING_STATE
        return f"{RUNNING_SET}:{{{tenant}}}:state"

    def worker_log(self, tenant: TenantId, evaluation_id: str) -> str:
        return f"logs:{self.name(tenant, evaluation_id)}:latest"
