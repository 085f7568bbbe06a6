"""``Idempotency-Key`` answers in process memory (the memory backend, use-case tests)."""

from collections.abc import Sequence
from datetime import datetime

from application.ports.idempotency_store import IdempotencyStore, KeyRecord
from domain.tenancy import TenantId

_Key = tuple[TenantId, str, str]


class MemoryIdempotencyStore(IdempotencyStore):
    """``IdempotencyStore`` as a dict by (tenant, caller, key); one event loop makes each
    call atomic."""

    def __init__(self) -> None:
        self.records: dict[_Key, KeyRecord] = {}

    async def claim(self, claim: KeyRecord, *, now: datetime) -> KeyRecord | None:
        held = await self.find(claim.tenant, claim.caller, claim.key, now=now)
        if held is None:
            self.records[_key_of(claim)] = claim
        return held

    async def find(
        self, tenant: TenantId, caller: str, key: str, *, now: datetime
    ) -> KeyRecord | None:
        record = self.records.get((tenant, caller, key))
        return None if record is None or record.reclaimable(now) else record

    async def complete(self, answer: KeyRecord) -> None:
        self.records[_key_of(answer)] = answer

    async def release(self, tenant: TenantId, caller: str, key: str) -> None:
        record = self.records.get((tenant, caller, key))
        if record is not None and record.in_flight():
            del self.records[tenant, caller, key]

    async def purge(self, now: datetime, tenant: TenantId) -> int:
        expired = [
            k for k, record in self.records.items() if k[0] == tenant and record.expires_at <= now
        ]
        for k in expired:
            del self.records[k]
        return len(expired)

    async def forget_answers_with(self, tenant: TenantId, needles: Sequence[bytes]) -> int:
        doomed = [
            k for k, record in self.records.items() if k[0] == tenant and _holds(record, needles)
        ]
        for k in doomed:
            del self.records[k]
        return len(doomed)


def _key_of(record: KeyRecord) -> _Key:
    return record.tenant, record.caller, record.key


def _holds(record: KeyRecord, needles: Sequence[bytes]) -> bool:
    body = b"" if record.response is None else record.response.body
    return any(needle in body for needle in needles)
