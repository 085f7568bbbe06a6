"""Where the answers of ``Idempotency-Key`` requests are kept, per tenant, caller and key."""

from abc import abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from domain.tenancy import DEFAULT_TENANT, TenantId


class StoredResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The answer a request got, replayed as it was to a retry with the same key."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One key's state: in flight (no ``response`` yet) or answered.

    ``fingerprint`` (method, path and body hashed) is known once the request's body has
    been read, that is when it is answered; a retry whose own differs is refused.
    ``tenant`` is the caller's (ADR 0032): one caller and key in two tenants are two
    records. A record kept before tenants has none: it is the default tenant's.
    """

    tenant: TenantId = DEFAULT_TENANT
    caller: str
    key: str
    fingerprint: str | None
    response: StoredResponse | None
    expires_at: datetime
    lease_until: datetime

    @classmethod
    def claimed(
        cls,
        caller: str,
        key: str,
        *,
        tenant: TenantId,
        lease_until: datetime,
        expires_at: datetime,
    ) -> "KeyRecord":
        """A key in flight: its request runs, its answer is not known yet."""
        return cls(
            tenant=tenant,
            caller=caller,
            key=key,
            fingerprint=None,
            response=None,
            expires_at=expires_at,
            lease_until=lease_until,
        )

    @classmethod
    def answered(
        cls,
        caller: str,
        key: str,
        *,
        tenant: TenantId,
        fingerprint: str,
        response: StoredResponse,
        expires_at: datetime,
    ) -> "KeyRecord":
        """A key whose request was answered (its lease ends with it)."""
        claim = cls.claimed(
            caller, key, tenant=tenant, lease_until=expires_at, expires_at=expires_at
        )
        return msgspec.structs.replace(claim, fingerprint=fingerprint, response=response)

    def in_flight(self) -> bool:
        return self.response is None

    def reclaimable(self, now: datetime) -> bool:
        """Expired, or in flight past its lease (its request died): the key is free again."""
        return self.expires_at <= now or (self.in_flight() and self.lease_until <= now)


class IdempotencyStore(Protocol):
    """Keys scoped to their tenant and caller, each kept until ``expires_at``.

    A claim is atomic across processes: of two requests with one key, one claims it and
    the other finds it in flight. A key past ``expires_at``, or in flight past
    ``lease_until`` (its request died), counts as absent and can be claimed again.
    Adapters raise ``BackendUnavailableError`` when they cannot be reached.
    """

    @abstractmethod
    async def claim(self, claim: KeyRecord, *, now: datetime) -> KeyRecord | None:
        """Store ``claim`` (a key in flight) for this request, or return the record that
        holds its key."""

    @abstractmethod
    async def find(
        self, tenant: TenantId, caller: str, key: str, *, now: datetime
    ) -> KeyRecord | None:
        """The live record of ``key`` (``None`` when absent, expired or abandoned)."""

    @abstractmethod
    async def complete(self, answer: KeyRecord) -> None:
        """Keep ``answer`` for its key (written whether or not this store holds the claim)."""

    @abstractmethod
    async def release(self, tenant: TenantId, caller: str, key: str) -> None:
        """Forget an in-flight key whose request ended without an answer worth keeping."""

    @abstractmethod
    async def purge(self, now: datetime, tenant: TenantId) -> int:
        """Delete ``tenant``'s expired records; returns how many went."""

    @abstractmethod
    async def forget_answers_with(self, tenant: TenantId, needles: Sequence[bytes]) -> int:
        """Delete ``tenant``'s answered keys whose stored body contains any of ``needles``
        (an erased evaluation's id as JSON), expired or not; returns how many went."""
