"""Who may do what: the scopes an API key grants and the caller a request acts as."""

from enum import StrEnum

import msgspec

from domain.tenancy import DEFAULT_TENANT, TenantId


class AccessScope(StrEnum):
    """``read`` < ``write`` < ``admin``: each scope grants everything below it."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    def grants(self, needed: "AccessScope") -> bool:
        return _RANK[self] >= _RANK[needed]


_RANK = {AccessScope.READ: 0, AccessScope.WRITE: 1, AccessScope.ADMIN: 2}


class Caller(msgspec.Struct, frozen=True):
    """The identity a request acts as: a key's name, never the key itself, and the tenant
    whose evaluations it sees."""

    name: str
    scope: AccessScope
    tenant: TenantId = DEFAULT_TENANT


# When no keys are configured the service is open and every request acts as this.
ANONYMOUS = Caller(name="anonymous", scope=AccessScope.ADMIN)
