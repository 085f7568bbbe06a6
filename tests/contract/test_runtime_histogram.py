"""Runtime percentiles of every store against nearest rank over the exact runtimes.

The SQL stores count runtimes in buckets (exact below 1,024 ms, then less than 0.8 %
wide, migration 0006): each percentile is the lower bound of the bucket that holds
the exact one. The memory store reports the exact value, which is also within it.
"""

import random

import pytest
import sqlalchemy as sa

from application.queries import PERCENTILES, RuntimeStatistics, nearest_rank
from application.runtime_buckets import bucket_width, runtime_bucket
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from tests.contract.conftest import BASE_TIME, PortStore, SqlPortStore, make_evaluation
from tests.contract.query_records import add, delete

pytestmark = pytest.mark.anyio


def _spread(count: int, seed: int) -> list[int]:
    """Runtimes from 0 ms to days, evenly spread on a log scale, with some repeats."""
    rng = random.Random(seed)
    values = [int(10 ** rng.uniform(0, 9.3)) for _ in range(count)]
    return values + values[: count // 10] + [0, 1023, 1024, 2**31 - 1]


def _assert_within_a_bucket(store: PortStore, reported: int | None, exact: int) -> None:
    assert reported is not None
    assert reported <= exact < reported + bucket_width(reported), (reported, exact)
    if store.kind != "memory":
        assert reported == runtime_bucket(exact)


async def _statistics(store: PortStore) -> RuntimeStatistics:
    async with store.session() as ports:
        return (await ports.queries.statistics()).runtime


def _assert_agrees(store: PortStore, runtime: RuntimeStatistics, runtimes: list[int]) -> None:
    ordered = sorted(runtimes)
    assert runtime.count == len(ordered)
    assert runtime.average_ms == pytest.approx(sum(ordered) / len(ordered))
    reported = {50: runtime.p50_ms, 95: runtime.p95_ms, 99: runtime.p99_ms}
    for percentile in PERCENTILES:
        exact = ordered[nearest_rank(percentile, len(ordered))]
        _assert_within_a_bucket(store, reported[percentile], exact)
    _assert_within_a_bucket(store, runtime.max_ms, ordered[-1])


async def test_percentiles_are_nearest_rank_to_a_bucket(sql_backend: PortStore) -> None:
    runtimes = _spread(400, seed=19)
    await add(
        sql_backend,
        *[
            make_evaluation(f"r{index:04d}", status=EvaluationStatus.COMPLETED, runtime_ms=value)
            for index, value in enumerate(runtimes)
        ],
    )
    _assert_agrees(sql_backend, await _statistics(sql_backend), runtimes)


async def test_below_a_second_percentiles_are_exact(sql_backend: PortStore) -> None:
    runtimes = [3, 5, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1000, 1023]
    await add(
        sql_backend,
        *[
            make_evaluation(f"x{index:02d}", runtime_ms=value)
            for index, value in enumerate(runtimes)
        ],
    )
    runtime = await _statistics(sql_backend)
    assert (runtime.p50_ms, runtime.p95_ms, runtime.p99_ms, runtime.max_ms) == (
        55,
        1023,
        1023,
        1023,
    )


async def test_percentiles_follow_updates_and_deletes(sql_backend: PortStore) -> None:
    runtimes = _spread(120, seed=7)
    ids = [f"u{index:04d}" for index in range(len(runtimes))]
    await add(
        sql_backend,
        *[make_evaluation(i, runtime_ms=value) for i, value in zip(ids, runtimes, strict=True)],
    )
    live = dict(zip(ids, runtimes, strict=True))
    rng = random.Random(3)
    async with sql_backend.session() as ports:
        for evaluation_id in rng.sample(ids, 40):
            record = await ports.repository.get(EvaluationId(evaluation_id))
            assert record is not None
            version = record.version
            record.runtime_ms = rng.randrange(0, 10**8)
            record.touch(BASE_TIME)
            await ports.repository.update(record, version)
            live[evaluation_id] = record.runtime_ms
    for evaluation_id in rng.sample(sorted(live), 30):
        await delete(sql_backend, evaluation_id)
        del live[evaluation_id]
    if isinstance(sql_backend, SqlPortStore):  # a purge: the rows go (cascade, triggers)
        purged = sorted(live)[:20]
        async with sql_backend.engine.begin() as connection:
            if connection.dialect.name == "postgresql":  # the purge's tenant, where RLS reads it
                await connection.execute(
                    sa.text("SELECT set_config('crucible.tenant', 'default', true)")
                )
            await connection.execute(
                sa.text("DELETE FROM evaluations WHERE id IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"ids": purged},
            )
        for evaluation_id in purged:
            del live[evaluation_id]

    _assert_agrees(sql_backend, await _statistics(sql_backend), list(live.values()))
