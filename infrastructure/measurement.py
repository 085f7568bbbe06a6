"""A measurement too slow to repeat on every request, kept and redone in the background.

The file store's walk and the cache's key scan grow with what they count (a walk of the
17,000 evaluation directories a million records leave takes most of a second). Each
inspection measures again unless the last two measurements each took ``fresh_s`` or more,
so a small store is always current, even after one measurement a busy machine slowed;
after two slow ones it gets the last result, and the measurement is
redone in the background, one at a time, once that result is older than
``refresh_after_s`` or twenty measurements' time, whichever is longer (so a walk that
takes 10 s runs at most 5 % of the time). The result says when it was measured.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

# Measured on every call while the last measurement took less than this.
FRESH_S = 0.02
# A slower measurement's result is redone in the background once this old.
REFRESH_AFTER_S = 30.0

T = TypeVar("T")


@dataclass(frozen=True)
class Measured(Generic[T]):
    value: T
    measured_at: datetime
    duration_s: float
    finished: float  # on the monotonic clock


class KeptMeasurement(Generic[T]):
    def __init__(
        self,
        measure: Callable[[], Awaitable[T]],
        *,
        fresh_s: float = FRESH_S,
        refresh_after_s: float = REFRESH_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._measure = measure
        self._fresh_s = fresh_s
        self._refresh_after_s = refresh_after_s
        self._clock = clock
        self._last: Measured[T] | None = None
        self._slow_in_a_row = 0
        self._refresh: asyncio.Task[None] | None = None

    async def get(self) -> Measured[T]:
        """Measured now while that is cheap (and the first time), else the last result."""
        last = self._last
        if last is None or self._slow_in_a_row < 2:
            return await self._measure_now()
        age = self._clock() - last.finished
        stale_after = max(self._refresh_after_s, 20 * last.duration_s)
        if age > stale_after and self._refresh is None:
            self._refresh = asyncio.get_running_loop().create_task(self._measure_again())
        return last

    async def latest(self) -> Measured[T]:
        """The last result as it is (measured now only if there is none): for a figure
        that must come from the same measurement as one ``get`` just answered."""
        return self._last if self._last is not None else await self.get()

    async def _measure_now(self) -> Measured[T]:
        measured_at, started = datetime.now(UTC), self._clock()
        value = await self._measure()
        finished = self._clock()
        self._last = Measured(value, measured_at, finished - started, finished)
        slow = self._last.duration_s >= self._fresh_s
        self._slow_in_a_row = self._slow_in_a_row + 1 if slow else 0
        return self._last

    async def _measure_again(self) -> None:
        try:
            await self._measure_now()
        except Exception as exc:  # the last result stays; a later call tries again
            logger.warning("measuring again failed: %r", exc)
        finally:
            self._refresh = None
