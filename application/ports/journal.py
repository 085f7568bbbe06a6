from abc import abstractmethod
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

import msgspec

from application.intents import JournalEntry
from domain.tenancy import TenantId


class JournalStats(msgspec.Struct, frozen=True, kw_only=True):
    pending: int
    oldest_at: datetime | None = None

    def oldest_age_s(self, now: datetime) -> float | None:
        """Seconds the oldest waiting entry has waited (None when nothing waits)."""
        return None if self.oldest_at is None else (now - self.oldest_at).total_seconds()


class Journal(Protocol):
    """The failover journal: acknowledged writes waiting for the primary, in order; one
    journal holds every tenant's, each entry naming its own.

    ``append`` returns only once the entry survives a crash of this process (for a
    durable journal: written and fsync'd), and raises ``BackendUnavailableError``
    (backend ``fallback``) when it cannot promise that.
    """

    name: str
    durable: bool

    @abstractmethod
    async def append(self, entry: JournalEntry) -> JournalEntry:
        """Store ``entry`` durably; returns it with its replay ``sequence`` set."""

    @abstractmethod
    async def has_pending(self) -> bool:
        """Whether any entry, of any process sharing the journal, waits for replay (cheap)."""

    @abstractmethod
    async def pending(self) -> list[JournalEntry]:
        """Every waiting entry, in replay order."""

    @abstractmethod
    async def pending_for(self, tenant: TenantId, evaluation_id: str) -> list[JournalEntry]:
        """The waiting entries of one evaluation of ``tenant``, in replay order."""

    @abstractmethod
    async def stats(self) -> JournalStats:
        """How many entries wait and since when."""

    @abstractmethod
    async def discard(self, applied: Iterable[str]) -> set[str]:
        """Forget the entries named (the primary holds them); returns those actually gone.

        An entry may outlive this call (a segment is removed only once all of it is
        applied); it is then skipped by its mark at the next replay.
        """

    @abstractmethod
    def replaying(self) -> AbstractAsyncContextManager[bool]:
        """Hold the right to replay (one replayer at a time); yields whether it was won."""
