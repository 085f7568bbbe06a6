"""One run of a piece of async work at a time, its result shared by whoever asks meanwhile."""

import copy
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class _Flight(Generic[T]):
    def __init__(self) -> None:
        self.landed = anyio.Event()
        self.result: T | None = None
        self.failed: BaseException | None = None


class SingleFlight(Generic[T]):
    """Callers that arrive while ``work`` runs wait for that run instead of starting another.

    A run that fails hands its error to everyone who waited for it; a run that was
    cancelled (its caller went away) is not an answer, so one of the waiters runs again.
    """

    def __init__(self, work: Callable[[], Awaitable[T]]) -> None:
        self._work = work
        self._flight: _Flight[T] | None = None

    async def run(self) -> T:
        while True:
            flight = self._flight
            if flight is None:
                return await self._lead()
            await flight.landed.wait()
            if isinstance(flight.failed, anyio.get_cancelled_exc_class()):
                continue
            if flight.failed is not None:
                # A copy per waiter: raising the leader's own error from every waiting task
                # would pile their frames onto one traceback.
                raise copy.copy(flight.failed).with_traceback(None) from flight.failed
            return flight.result  # type: ignore[return-value]

    async def _lead(self) -> T:
        flight = self._flight = _Flight[T]()
        try:
            flight.result = await self._work()
        except BaseException as error:
            flight.failed = error
            raise
        finally:
            self._flight = None
            flight.landed.set()
        return flight.result
