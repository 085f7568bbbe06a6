"""``Idempotency-Key`` answers in process memory (the memory backend, use-case tests)."""

from datetime import datetime

from application.ports.idempotency_store import IdempotencyStore, KeyRecord, StoredResponse


class MemoryIdempotencyStore(IdempotencyStore):
    """``IdempotencyStore`` as a dict; one event loop makes each call atomic."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], KeyRecord] = {}

    async def claim(
        self, caller: str, key: str, *, now: datetime, lease_until: datetime, expires_at: datetime
    ) -> KeyRecord | None:
        held = await self.find(caller, key, now=now)
        if held is not None:
            return held
        self.records[caller, key] = KeyRecord.claimed(
            caller, key, lease_until=lease_until, expires_at=expires_at
        )
        return None

    async def find(self, caller: str, key: str, *, now: datetime) -> KeyRecord | None:
        record = self.records.get((caller, key))
        return None if record is None or record.reclaimable(now) else record

    async def complete(
        self,
        caller: str,
        key: str,
        *,
        fingerprint: str,
        response: StoredResponse,
        expires_at: datetime,
    ) -> None:
        self.records[caller, key] = KeyRecord.answered(
            caller, key, fingerprint=fingerprint, response=response, expires_at=expires_at
        )

    async def release(self, caller: str, key: str) -> None:
        record = self.records.get((caller, key))
        if record is not None and record.in_flight():
            del self.records[caller, key]

    async def purge(self, now: datetime) -> int:
        expired = [k for k, record in self.records.items() if record.expires_at <= now]
        for k in expired:
            del self.records[k]
        return len(expired)
