"""One instant for everything a write does, so a replay can reproduce it exactly.

A write routed by failover reads "now" once: the record's timestamps, its audit
entry and the journal entry all carry that instant, and replaying the entry later
pins the clock to it again. A context variable rather than a request-scoped clock,
because the use cases' collaborators (``ChangeApplier``) live as long as the app.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from application.ports.clock import Clock

_pinned: ContextVar[datetime | None] = ContextVar("pinned_now", default=None)


@dataclass(frozen=True, slots=True)
class PinnableClock:
    """``Clock`` that answers the pinned instant of the current task when there is one."""

    inner: Clock

    def now(self) -> datetime:
        return _pinned.get() or self.inner.now()


@contextmanager
def pinned(at: datetime) -> Iterator[None]:
    """Make every ``PinnableClock`` of this task answer ``at`` inside the block."""
    token = _pinned.set(at)
    try:
        yield
    finally:
        _pinned.reset(token)
