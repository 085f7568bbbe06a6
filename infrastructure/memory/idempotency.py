"""``Idempotency-Key`` answers in process memory (the memory backend, use-case tests)."""

from collections.abc import Sequence
from datetime import datetime

from application.ports.idempotency_store import IdempotencyStore, KeyRecord
from domain.tenancy import DEFAULT_TENANT, TenantId


class MemoryIdempotencyStore(IdempotencyStore):
    """``IdempotencyStore`` as a dict; one event loop makes each call atomic.

    Its keys name no tenant: every key is the default tenant's, the only one served
    with keys outside the database so far (ADR 0032), and another tenant's purge finds none.
    """

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], KeyRecord] = {}

    async def claim(self, claim: KeyRecord, *, now: datetime) -> KeyRecord | None:
        held = await self.find(claim.caller, claim.key, now=now)
        if held is None:
            self.records[claim.caller, claim.key] = claim
        return held

    async def find(self, caller: str, key: str, *, now: datetime) -> KeyRecord | None:
        record = self.records.get((caller, key))
        return None if record is None or record.reclaimable(now) else record

    async def complete(self, answer: KeyRecord) -> None:
        self.records[answer.caller, answer.key] = answer

    async def release(self, caller: str, key: str) -> None:
        record = self.records.get((caller, key))
        if record is not None and record.in_flight():
            del self.records[caller, key]

    async def purge(self, now: datetime, tenant: TenantId) -> int:
        if tenant != DEFAULT_TENANT:  # its keys name no tenant: see the class
            return 0
        expired = [k for k, record in self.records.items() if record.expires_at <= now]
        for k in expired:
            del self.records[k]
        return len(expired)

    async def forget_answers_with(self, needles: Sequence[bytes]) -> int:
        doomed = [k for k, record in self.records.items() if _holds(record, needles)]
        for k in doomed:
            del self.records[k]
        return len(doomed)


def _holds(record: KeyRecord, needles: Sequence[bytes]) -> bool:
    body = b"" if record.response is None else record.response.body
    return any(needle in body for needle in needles)
