"""One memory store per tenant (ADR 0032): a memory adapter made for one tenant holds
that tenant's store and so cannot reach another's."""

from typing import Self

from domain.tenancy import DEFAULT_TENANT, TenantId


class PerTenant:
    """A store whose own data is the default tenant's; ``of`` gives each other tenant a
    fresh store of the same class, made on first use."""

    def of(self, tenant: TenantId) -> Self:
        """``tenant``'s store."""
        if tenant == DEFAULT_TENANT:
            return self
        others: dict[TenantId, Self] = self.__dict__.setdefault("_others", {})
        found = others.get(tenant)
        if found is None:
            found = others[tenant] = type(self)()
        return found
