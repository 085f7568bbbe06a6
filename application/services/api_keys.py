"""API keys: who presented which secret, checked without timing leaks."""

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from domain.access import AccessScope, Caller
from domain.tenancy import DEFAULT_TENANT, TenantId


def digest_of(secret: str) -> bytes:
    """Keys are held as SHA-256 digests: the secrets themselves are dropped after parsing."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


class ApiKey(msgspec.Struct, frozen=True):
    name: str
    scope: AccessScope
    digest: bytes
    tenant: TenantId = DEFAULT_TENANT

    def __repr__(self) -> str:  # never print the digest either
        return f"ApiKey(name={self.name!r}, scope={self.scope.value!r}, tenant={self.tenant!r})"


@dataclass(frozen=True, slots=True)
class ApiKeyVerifier:
    """Maps a presented secret to its caller; every key is compared on every call.

    Comparing digests with ``hmac.compare_digest`` and never stopping at the first
    match keeps the time taken independent of which key (if any) matched.
    """

    keys: tuple[ApiKey, ...]

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def verify(self, secret: str) -> Caller | None:
        presented = digest_of(secret)
        found: ApiKey | None = None
        for key in self.keys:
            if hmac.compare_digest(presented, key.digest):
                found = key
        if found is None:
            return None
        return Caller(name=found.name, scope=found.scope, tenant=found.tenant)

    def named(self, name: str) -> ApiKey | None:
        """The key called ``name`` (for sessions, which hold only the name)."""
        return next((key for key in self.keys if key.name == name), None)


def served_tenants(keys: Iterable[ApiKey]) -> tuple[TenantId, ...]:
    """The tenants a deployment serves: the default tenant, then each one a key names.

    Jobs and start-up work act for each of them in turn (ADR 0032). A tenant whose last
    key left ``API_KEYS`` keeps its rows, untouched until a key names it again.
    """
    named = {key.tenant for key in keys} - {DEFAULT_TENANT}
    return (DEFAULT_TENANT, *sorted(named))
