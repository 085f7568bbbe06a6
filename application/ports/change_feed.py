import builtins
from abc import abstractmethod
from datetime import datetime
from typing import Protocol

import msgspec

from domain.changes import Change, ChangeCursor, ChangeKind


class ChangeQuery(msgspec.Struct, frozen=True, kw_only=True):
    """A page of the feed after ``after`` (``None``: from the oldest change kept)."""

    after: ChangeCursor | None = None
    # Only changes recorded since then (a reader without a cursor starts at the retention).
    since: datetime | None = None
    evaluation_id: str | None = None
    kinds: frozenset[ChangeKind] = frozenset()  # empty: every kind
    limit: int = 100


class ChangePage(msgspec.Struct, frozen=True, kw_only=True):
    """The matching changes of a page and ``reached``: the cursor of the last entry read.

    A page read past entries that did not match, so the next page starts at ``reached``
    (not at the last change returned); ``None`` when nothing was read.
    """

    changes: builtins.list[Change]
    reached: ChangeCursor | None
    # Whether ``limit`` entries were read: more may follow at once.
    full: bool = False


class ChangeFeed(Protocol):
    """Committed writes in feed order, read from the audit trail (the outbox).

    The order is final: a change a reader has not seen yet can only come after every
    cursor it was given, whatever order concurrent transactions commit in.
    """

    @abstractmethod
    async def read(self, query: ChangeQuery) -> ChangePage:
        """The entries after ``query.after``, at most ``query.limit`` read, in feed order."""

    @abstractmethod
    async def recorded_at(self, cursor: ChangeCursor) -> datetime | None:
        """When the change at ``cursor`` was written; ``None`` if the feed has no such change."""

    @abstractmethod
    async def latest(self) -> ChangeCursor | None:
        """The cursor of the newest change a reader may see now; ``None`` for an empty feed."""
