import builtins
from abc import abstractmethod
from datetime import datetime
from typing import Protocol

import msgspec

from domain.audit import AuditAction, AuditEntry


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of ``GET /audit``; ``before_id`` is the keyset cursor (newest first)."""

    evaluation_id: str | None = None
    actor: str | None = None
    action: AuditAction | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 50


class AuditLog(Protocol):
    """The append-only audit trail, written in the transaction of the change it describes."""

    @abstractmethod
    async def append(self, entry: AuditEntry) -> None:
        """Add ``entry`` to the request's transaction: it commits or rolls back with it."""

    @abstractmethod
    async def list(self, query: AuditQuery) -> builtins.list[AuditEntry]:
        """Matching entries, newest first, at most ``query.limit``, each with its ``id``."""
