"""Where the relay sends the change feed (a JetStream stream): the destination's side."""

from abc import abstractmethod
from collections.abc import Sequence
from typing import Protocol

import msgspec

from application.errors import ApplicationError
from domain.changes import Change, ChangeCursor


class SinkPosition(msgspec.Struct, frozen=True, kw_only=True):
    """What the destination holds: the cursor of its last change, and its own mark for it.

    ``cursor`` is ``None`` while it holds no change. ``mark`` is the destination's count
    of what it stored (JetStream's stream sequence); a publish names it, so that it is
    refused once anything else was stored since.
    """

    cursor: ChangeCursor | None
    mark: int


class ChangeSinkMovedError(ApplicationError):
    """Something was stored after the position a publish named (another relay ran)."""


class ChangeSinkUnavailableError(ApplicationError):
    """The destination cannot be reached or used as it is; nothing was published."""


class ChangeSink(Protocol):
    """An ordered, deduplicating destination: each change is stored once, in feed order.

    A change's message id is its cursor token, so a consumer that sees one again (a
    relay retried after a lost acknowledgement) can drop it.
    """

    @abstractmethod
    async def position(self) -> SinkPosition:
        """Where the destination stands now; the relay resumes after its ``cursor``."""

    @abstractmethod
    async def publish(self, changes: Sequence[Change], after: SinkPosition) -> SinkPosition:
        """Store ``changes`` (in order, each acknowledged) right after ``after``.

        Returns the position after the last one. Raises ``ChangeSinkMovedError`` at the
        first change refused because the destination moved past ``after`` meanwhile: the
        changes before it are stored, none after it.
        """
