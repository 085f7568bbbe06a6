"""``Idempotency-Key``: one claim per key, its answer kept in the database and beside the journal.

A retried write must find its first answer wherever the write went. While the
database serves, a key is claimed there (shared by every replica); while it is away
the write goes to the failover journal and its key is claimed in the fallback store
beside the journal. Every answer is also kept in the fallback store, and a claim
looks there first, so a retry during an outage still finds an answer the database
gave just before it went away, and a retry after it finds an answer given during it.
"""

from datetime import datetime, timedelta

import structlog

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.failover.primary import PrimaryState
from application.ports.clock import Clock
from application.ports.idempotency_store import IdempotencyStore, KeyRecord, StoredResponse
from domain.access import Caller
from domain.tenancy import TenantId

log = structlog.get_logger(__name__)


class IdempotencyKeys:
    """Claims, answers and expiry of keys over the primary store and its fallback.

    A key is the caller's: its name's, in its tenant (two tenants' keys never meet).
    """

    def __init__(
        self,
        primary: IdempotencyStore,
        fallback: IdempotencyStore | None,
        mirror: IdempotencyStore | None,
        clock: Clock,
        primary_state: PrimaryState,
        *,
        ttl: timedelta,
        lease: timedelta,
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        self._mirror = mirror
        self._clock = clock
        self._primary_state = primary_state
        self.ttl = ttl
        self._lease = lease

    async def claim(self, caller: Caller, key: str) -> KeyRecord | None:
        """Claim ``key`` for this request (``None``), or the record of the request that has it."""
        now = self._clock.now()
        claim = KeyRecord.claimed(
            caller.name,
            key,
            tenant=caller.tenant,
            lease_until=now + self._lease,
            expires_at=now + self.ttl,
        )
        if self._fallback is not None:
            held = await self._in_fallback(caller, key, now)
            if held is not None:
                return held
            if self._primary_state.is_down:  # known away: no timeout per request
                return await self._fallback.claim(claim, now=now)
        try:
            return await self._primary.claim(claim, now=now)
        except BackendUnavailableError as error:
            if error.backend != Backend.DATABASE or self._fallback is None:
                raise
            log.warning("idempotency_key_to_fallback", reason=error.detail)
            return await self._fallback.claim(claim, now=now)

    async def _in_fallback(self, caller: Caller, key: str, now: datetime) -> KeyRecord | None:
        """The fallback's record of ``key``; an unreadable fallback is no reason to refuse a
        write the database can serve (its keys are there)."""
        assert self._fallback is not None
        try:
            return await self._fallback.find(caller.tenant, caller.name, key, now=now)
        except BackendUnavailableError as error:
            if self._primary_state.is_down:
                raise
            log.warning("idempotency_fallback_unreadable", reason=error.detail)
            return None

    async def complete(
        self, caller: Caller, key: str, fingerprint: str, response: StoredResponse
    ) -> None:
        """Keep the answer in the primary (when it answers) and beside the journal: mirrored
        when the primary has it, durably when it does not."""
        answer = KeyRecord.answered(
            caller.name,
            key,
            tenant=caller.tenant,
            fingerprint=fingerprint,
            response=response,
            expires_at=self._clock.now() + self.ttl,
        )
        stored = False
        if self._fallback is None or not self._primary_state.is_down:
            try:
                await self._primary.complete(answer)
                stored = True
            except BackendUnavailableError as error:
                if error.backend != Backend.DATABASE or self._fallback is None:
                    raise
        copy = self._mirror if stored else self._fallback  # the only copy must be durable
        if copy is not None:
            try:
                await copy.complete(answer)
            except BackendUnavailableError:
                if not stored:
                    raise
                log.warning("idempotency_answer_not_mirrored", key=key)

    async def release(self, caller: Caller, key: str) -> None:
        """Free a key whose request ended without an answer to keep (a 5xx, a dropped client)."""
        primary = None if self._primary_state.is_down and self._fallback else self._primary
        for store in (primary, self._fallback):
            if store is None:
                continue
            try:
                await store.release(caller.tenant, caller.name, key)
            except BackendUnavailableError as error:  # its lease frees it in the end
                log.warning("idempotency_release_failed", key=key, reason=error.detail)

    async def purge(self, tenant: TenantId) -> int:
        """Delete ``tenant``'s expired keys in both stores (the fallback's while the primary
        is away too)."""
        now: datetime = self._clock.now()
        purged = 0
        for store in (self._primary, self._fallback):
            if store is None:
                continue
            try:
                purged += await store.purge(now, tenant)
            except BackendUnavailableError as error:
                log.warning("idempotency_purge_failed", reason=error.detail)
        return purged

    async def forget_answers_with(self, tenant: TenantId, needles: list[bytes]) -> int:
        """Delete ``tenant``'s kept answers holding any of ``needles`` in every store (erasure):
        unlike ``purge``, an unreachable store fails the call, so the erasure is retried."""
        forgotten = 0
        seen: list[IdempotencyStore] = []
        for store in (self._primary, self._fallback, self._mirror):
            if store is None or any(store is other for other in seen):
                continue
            seen.append(store)
            forgotten += await store.forget_answers_with(tenant, needles)
        return forgotten
