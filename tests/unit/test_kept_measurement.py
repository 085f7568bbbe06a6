"""KeptMeasurement: quick measurements are redone on every call; slow ones (two in a row)
are kept and redone in the background once stale, one at a time."""

import asyncio

import pytest

from infrastructure.measurement import KeptMeasurement

pytestmark = pytest.mark.anyio


class Meter:
    """A measurement that takes ``cost`` seconds of a fake clock and counts its runs."""

    def __init__(self, cost: float) -> None:
        self.now = 0.0
        self.cost = cost
        self.runs = 0
        self.release = asyncio.Event()
        self.release.set()
        self.fail = False

    def clock(self) -> float:
        return self.now

    async def measure(self) -> int:
        await self.release.wait()
        if self.fail:
            raise OSError("gone")
        self.now += self.cost
        self.runs += 1
        return self.runs


async def test_a_quick_measurement_is_redone_every_time() -> None:
    meter = Meter(cost=0.001)
    kept = KeptMeasurement(meter.measure, fresh_s=0.02, clock=meter.clock)
    values = [(await kept.get()).value for _ in range(3)]
    assert values == [1, 2, 3]


async def test_a_slow_measurement_is_kept_then_redone_in_the_background() -> None:
    meter = Meter(cost=2.0)
    kept = KeptMeasurement(meter.measure, fresh_s=0.02, refresh_after_s=30, clock=meter.clock)
    first = await kept.get()
    assert (first.value, first.duration_s) == (1, 2.0)
    assert (await kept.get()).value == 2  # one slow measurement may be the machine's: again
    meter.now += 29  # younger than 30 s and than 20 walks (40 s): kept
    assert (await kept.get()).value == 2
    meter.now += 12  # 41 s old: the same result now, a new one in the background
    meter.release.clear()
    assert (await kept.get()).value == 2
    assert (await kept.get()).value == 2  # one refresh at a time
    meter.release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert meter.runs == 3
    assert (await kept.get()).value == 3


async def test_one_slow_measurement_among_quick_ones_is_redone_on_the_next_call() -> None:
    meter = Meter(cost=0.001)
    kept = KeptMeasurement(meter.measure, fresh_s=0.02, clock=meter.clock)
    assert (await kept.get()).value == 1
    meter.cost = 0.5  # a busy machine slows one measurement of a small store
    assert (await kept.get()).value == 2
    meter.cost = 0.001
    assert (await kept.get()).value == 3  # measured again, not kept for 30 s
    assert (await kept.get()).value == 4


async def test_a_failed_refresh_keeps_the_last_result() -> None:
    meter = Meter(cost=1.0)
    kept = KeptMeasurement(meter.measure, fresh_s=0.02, refresh_after_s=1, clock=meter.clock)
    await kept.get()
    await kept.get()  # two slow measurements: kept from now on
    meter.fail = True
    meter.now += 100
    assert (await kept.get()).value == 2
    for _ in range(5):
        await asyncio.sleep(0)
    assert (await kept.get()).value == 2


async def test_latest_is_the_measurement_get_answered_even_when_quick() -> None:
    meter = Meter(cost=0.001)
    kept = KeptMeasurement(meter.measure, fresh_s=0.02, clock=meter.clock)
    assert (await kept.latest()).value == 1  # none yet: measured now
    assert (await kept.get()).value == 2  # quick: redone
    assert (await kept.latest()).value == 2  # the same one, not a third run
    assert meter.runs == 2
