"""``Idempotency-Key`` answers in process memory (the memory backend, use-case tests)."""

from datetime import datetime

from application.ports.idempotency_store import IdempotencyStore, KeyRecord


class MemoryIdempotencyStore(IdempotencyStore):
    """``IdempotencyStore`` as a dict; one event loop makes each call atomic."""

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

    async def purge(self, now: datetime) -> int:
        expired = [k for k, record in self.records.items() if record.expires_at <= now]
        for k in expired:
            del self.records[k]
        return len(expired)
