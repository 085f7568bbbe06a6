"""The records each scenario needs, created through the API before it runs.

Ids are ``<run>-<set>-<n>``; the Lua scripts address them the same way
(``seeded_id`` in ``wrk/common.lua``: thread ``t`` of ``per_thread`` records owns
``n = t * per_thread + k``), so no two wrk threads touch the same record.

After seeding, ``analyze`` gives the planner statistics of what was loaded: the
PostgreSQL here runs with autovacuum off, and a table that grew without them plans the
list as a scan and sort of every live row instead of a walk down its index.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import asyncpg
import httpx

from domain.status import EvaluationStatus

SEED_CONCURRENCY = 16
CODE = "import math\nprint(sum(math.sqrt(i) for i in range(1000)))\n"


class SeedError(RuntimeError):
    """The service refused a seeding request."""


def record_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n}" for n in range(count)]


async def _each(items: Iterable[str], work: Callable[[str], Awaitable[None]]) -> None:
    queue = list(items)

    async def worker() -> None:
        while queue:
            await work(queue.pop())

    await asyncio.gather(*(worker() for _ in range(SEED_CONCURRENCY)))


def _check(response: httpx.Response, expected: int) -> None:
    if response.status_code != expected:
        raise SeedError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )


async def seed_records(
    client: httpx.AsyncClient,
    ids: list[str],
    *,
    status: EvaluationStatus = EvaluationStatus.QUEUED,
) -> None:
    """Create ``ids`` (queued) and move them to ``status`` when it is running."""

    async def create(evaluation_id: str) -> None:
        body = {
            "id": evaluation_id,
            "code": CODE,
            "language": "python",
            "metadata": {"user": "bench", "tags": ["a", "b"]},
        }
        _check(await client.post("/evaluations", json=body), 200)
        if status is EvaluationStatus.RUNNING:
            change = {"status": "running", "executor_id": "bench", "container_id": "c-1"}
            _check(await client.put(f"/evaluations/{evaluation_id}", json=change), 200)

    await _each(ids, create)


async def read_all(client: httpx.AsyncClient, ids: list[str]) -> None:
    """GET every id once (fills the cache of an instance that caches)."""

    async def read(evaluation_id: str) -> None:
        _check(await client.get(f"/evaluations/{evaluation_id}"), 200)

    await _each(ids, read)


async def analyze(dsn: str) -> None:
    """``ANALYZE`` the database: statistics of the seeded tables, as autovacuum would keep."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
