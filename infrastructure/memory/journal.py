"""Journals that keep nothing on disk: for tests (memory) and for no fallback at all."""

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import anyio
import msgspec

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.intents import JournalEntry, entry_of
from application.ports.journal import Journal, JournalStats
from domain.tenancy import TenantId
from infrastructure.metrics import journaled


class MemoryJournal(Journal):
    """``FALLBACK_BACKEND=memory``: entries die with the process (``/health`` says so)."""

    name = "memory"
    durable = False

    def __init__(self) -> None:
        self._entries: list[JournalEntry] = []
        self._sequence = 0
        self._replay_lock = anyio.Lock()

    async def append(self, entry: JournalEntry) -> JournalEntry:
        self._sequence += 1
        stored = msgspec.structs.replace(entry, sequence=self._sequence)
        self._entries.append(stored)
        journaled()
        return stored

    async def has_pending(self) -> bool:
        return bool(self._entries)

    async def pending(self) -> list[JournalEntry]:
        return list(self._entries)

    async def pending_for(self, tenant: TenantId, evaluation_id: str) -> list[JournalEntry]:
        return [entry for entry in self._entries if entry_of(entry, tenant, evaluation_id)]

    async def stats(self) -> JournalStats:
        oldest = min((entry.at for entry in self._entries), default=None)
        return JournalStats(pending=len(self._entries), oldest_at=oldest)

    async def discard(self, applied: Iterable[str]) -> set[str]:
        done = set(applied)
        gone = {entry.id for entry in self._entries if entry.id in done}
        self._entries = [entry for entry in self._entries if entry.id not in done]
        return gone

    @asynccontextmanager
    async def replaying(self) -> AsyncIterator[bool]:
        if self._replay_lock.locked():
            yield False
            return
        async with self._replay_lock:
            yield True


class NoJournal(Journal):
    """``FALLBACK_BACKEND=none``: a write the primary refuses is refused (503)."""

    name = "none"
    durable = False

    async def append(self, entry: JournalEntry) -> JournalEntry:  # noqa: ARG002
        raise BackendUnavailableError(
            Backend.FALLBACK, "no fallback is configured (FALLBACK_BACKEND)"
        )

    async def has_pending(self) -> bool:
        return False

    async def pending(self) -> list[JournalEntry]:
        return []

    async def pending_for(self, tenant: TenantId, evaluation_id: str) -> list[JournalEntry]:  # noqa: ARG002
        return []

    async def stats(self) -> JournalStats:
        return JournalStats(pending=0)

    async def discard(self, applied: Iterable[str]) -> set[str]:  # noqa: ARG002
        return set()

    @asynccontextmanager
    async def replaying(self) -> AsyncIterator[bool]:
        yield False
