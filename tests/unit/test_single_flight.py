"""SingleFlight: one run at a time, its answer or error shared, a cancelled run retried."""

import anyio
import pytest

from application.services.single_flight import SingleFlight

pytestmark = pytest.mark.anyio


class Work:
    def __init__(self) -> None:
        self.runs = 0
        self.release = anyio.Event()
        self.fail: Exception | None = None

    async def __call__(self) -> int:
        self.runs += 1
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return self.runs


async def test_callers_during_a_run_share_its_error() -> None:
    work = Work()
    work.fail = RuntimeError("down")
    flight = SingleFlight(work)
    errors: list[str] = []

    async def ask() -> None:
        with pytest.raises(RuntimeError) as caught:
            await flight.run()
        errors.append(str(caught.value))

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        work.release.set()
    assert errors == ["down"] * 5
    assert work.runs == 1


async def test_a_cancelled_leader_leaves_the_waiters_to_run_again() -> None:
    work = Work()
    flight = SingleFlight(work)
    answers: list[int] = []

    async def wait_for_answer() -> None:
        answers.append(await flight.run())

    async with anyio.create_task_group() as group:
        async with anyio.create_task_group() as leader:
            leader.start_soon(flight.run)
            await anyio.wait_all_tasks_blocked()
            group.start_soon(wait_for_answer)
            group.start_soon(wait_for_answer)
            await anyio.wait_all_tasks_blocked()
            leader.cancel_scope.cancel()
        await anyio.wait_all_tasks_blocked()
        work.release.set()
    assert answers == [2, 2]  # the second run, shared by both waiters
    assert work.runs == 2


async def test_a_waiter_that_goes_away_leaves_the_run_and_the_others_alone() -> None:
    work = Work()
    flight = SingleFlight(work)
    answers: list[int] = []

    async def ask() -> None:
        answers.append(await flight.run())

    async with anyio.create_task_group() as group:
        group.start_soon(ask)  # the leader
        await anyio.wait_all_tasks_blocked()
        async with anyio.create_task_group() as leaving:
            leaving.start_soon(flight.run)
            await anyio.wait_all_tasks_blocked()
            leaving.cancel_scope.cancel()
        group.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        work.release.set()
    assert answers == [1, 1]
    assert work.runs == 1
