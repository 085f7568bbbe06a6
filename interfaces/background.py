"""Background jobs beside the app: started with it, asked to stop (not cut off) with it.

A job is not cancelled at the app's stop while it may be inside a database call.
Cancelled in the middle of a SQLAlchemy call on SQLite, a job makes SQLAlchemy close
the aiosqlite connection from a task of its own that nothing awaits; when the event
loop ends before that connection's worker thread has finished the query, that task
never finishes (aiosqlite's ``close`` swallows the loop's one cancellation and then
waits for a thread that has already stopped), so ``asyncio.run``'s final task
cancellation never returns: the TestClient teardown hangs, and so would uvicorn's exit
on SIGTERM.

So at the app's stop a job's ``stopping`` event is set; the job ends at its next safe
point, and the stop waits for it up to ``STOP_GRACE_S``. Only a job still running then
(stuck) is cancelled, so that it cannot hold the stop.

Every job hears the stop the same way: ``stopping.is_set`` is given to its use case as
``stop``, which asks it between two items (records warmed, journal entries replayed,
payloads tiered, retention batches) and ends there. A periodic job's round gets the same
event, so a round in progress ends at its next item too, not only before the next round.
"""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

logger = logging.getLogger("storage_service.periodic")

# How long the app's stop waits for a background job to finish what it is doing.
STOP_GRACE_S = 5.0


@asynccontextmanager
async def background(
    name: str, run: Callable[[anyio.Event], Awaitable[object]]
) -> AsyncIterator[None]:
    """Run ``run(stopping)`` while the block runs; at its end set ``stopping`` and wait.

    The wait is bounded by ``STOP_GRACE_S`` (read at the stop, so tests can shorten it);
    a job still running after it is cancelled. Only this cancels the job: a cancellation of the
    enclosing task (the lifespan's) does not reach it mid-call, it ends the same way.
    """
    stopping = anyio.Event()
    finished = anyio.Event()
    job_scope = anyio.CancelScope(shield=True)

    async def guarded() -> None:
        try:
            with job_scope:
                await run(stopping)
        finally:
            finished.set()

    async with anyio.create_task_group() as group:
        group.start_soon(guarded, name=name)
        try:
            yield
        finally:
            stopping.set()
            with anyio.move_on_after(STOP_GRACE_S, shield=True):
                await finished.wait()
            if not finished.is_set():
                logger.warning("%s did not stop within %.1f s; cancelling it", name, STOP_GRACE_S)
            job_scope.cancel()


async def wait_or_stop(stopping: anyio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stopping`` is set meanwhile."""
    with anyio.move_on_after(seconds):
        await stopping.wait()


# A periodic job's round: given the app's ``stopping`` event, to pass on as its use case's ``stop``.
Round = Callable[[anyio.Event], Awaitable[object]]


async def _every(name: str, interval_s: float, job: Round, stopping: anyio.Event) -> None:
    while not stopping.is_set():
        try:
            await job(stopping)
        except Exception:  # the next round tries again; the service keeps serving
            logger.exception("%s failed", name)
        await wait_or_stop(stopping, interval_s)


@asynccontextmanager
async def periodic(name: str, interval_s: float, job: Round) -> AsyncIterator[None]:
    """Run ``job(stopping)`` at once and then every ``interval_s`` seconds until the app stops.

    A round in progress at the stop ends at its next item (within ``STOP_GRACE_S``); no new
    one starts.
    """

    async def rounds(stopping: anyio.Event) -> None:
        await _every(name, interval_s, job, stopping)

    async with background(name, rounds):
        yield
