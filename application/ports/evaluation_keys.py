"""The evaluation keys of crypto-shredding (ADR 0033), as the key table holds them."""

from abc import abstractmethod
from collections.abc import Sequence
from typing import Protocol

import msgspec

from domain.tenancy import TenantId


class WrappedKey(msgspec.Struct, frozen=True):
    """An evaluation key as stored: sealed by the key-encryption key ``kid``."""

    kid: str
    wrapped: bytes


class EvaluationKeys(Protocol):
    """One key per evaluation, kept apart from everything sealed under it.

    Copies of an evaluation outside the database (blobs, the journal, the mirror, the
    cache) are sealed under its key; ``destroy`` makes every such copy unreadable, the
    ones the service cannot reach any more included. Every call is its own transaction:
    what ``add`` returns is committed, so nothing is sealed under a key that a crash
    could take back. Ids are the evaluations' (``EvaluationId``) of one tenant's rows;
    ``of`` gives another tenant's (ADR 0032).
    """

    @abstractmethod
    def of(self, tenant: TenantId) -> "EvaluationKeys":
        """The same table, on ``tenant``'s rows."""

    @abstractmethod
    async def fetch(self, evaluation_id: str) -> WrappedKey | None:
        """The stored key of ``evaluation_id``; ``None``: never made, or destroyed."""

    @abstractmethod
    async def add(self, evaluation_id: str, key: WrappedKey) -> WrappedKey:
        """Store ``key`` unless ``evaluation_id`` has one: the key kept either way (of two
        concurrent adds one wins, and both callers get the winner)."""

    @abstractmethod
    async def destroy(self, evaluation_ids: Sequence[str]) -> int:
        """Remove the keys of ``evaluation_ids`` for good; how many there were. A key
        that does not exist, or is destroyed twice, is no error."""

    @abstractmethod
    async def page(self, after: str | None, limit: int) -> list[tuple[str, WrappedKey]]:
        """Up to ``limit`` keys in id order, from the first id after ``after``."""

    @abstractmethod
    async def replace(self, evaluation_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        """Store ``new`` where ``old`` is still stored (rotation); whether it was."""

    @abstractmethod
    async def count(self) -> int:
        """How many keys are stored."""
