"""Stopping the app while a background job is inside a SQLite query ends its event loop.

Regression: cancelling a job (cache warming, retention, tiering) in the middle of a
SQLAlchemy call on aiosqlite makes SQLAlchemy close the connection from a task of its
own, which nothing awaits. When the event loop closed before the connection's worker
thread was done, that task never finished and ``asyncio.run``'s final task
cancellation hung: the TestClient teardown, or uvicorn's exit on SIGTERM.

Each test holds the query in the worker thread (a SQL function that blocks until
released), stops the app meanwhile, then releases the query: the loop must end.
A hang fails the test after ``HANG_S`` (and the stuck task is then cancelled again so
the run can go on).
"""

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from dishka import Provider, Scope, provide
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from application.ports.evaluation_maintenance import EvaluationMaintenance
from domain.evaluation import Evaluation
from infrastructure.sql.maintenance import SqlEvaluationMaintenance
from infrastructure.sql.migrate import upgrade
from interfaces import background
from interfaces.http.app import create_app
from interfaces.settings import Settings, load_settings

HANG_S = 20.0
HELD_S = 0.5  # how long the query stays in the worker thread after the app is told to stop
RELEASE_TIMEOUT_S = 30.0  # a held query gives up on its own after this


class _Gate:
    """A SQL function ``hold()`` that blocks aiosqlite's worker thread until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def hold(self) -> int:
        self.entered.set()
        self.released.wait(RELEASE_TIMEOUT_S)
        return 1

    async def hold_in(self, session: AsyncSession) -> None:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.create_function("hold", 0, self.hold)
        await session.execute(sa.text("SELECT hold()"))


def _ends_within(stop: Callable[[], None], loop: asyncio.AbstractEventLoop, gate: _Gate) -> None:
    """Run ``stop`` while the query is held; fail if the loop does not end after release."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            stop()
        except BaseException as error:
            errors.append(error)

    stopper = threading.Thread(target=run, daemon=True)
    stopper.start()
    time.sleep(HELD_S)  # the stop runs while the worker thread is still in the query
    gate.released.set()
    stopper.join(HANG_S)
    if stopper.is_alive():
        # Unstick the run: the hung task ignored the loop's one cancellation; a second ends it.
        loop.call_soon_threadsafe(lambda: [task.cancel() for task in asyncio.all_tasks()])
        stopper.join(HANG_S)
        pytest.fail(
            f"the event loop did not end within {HANG_S:.0f} s of stopping with a query in flight"
        )
    assert not errors, errors


@pytest.fixture
def embedded(tmp_path: Path) -> Settings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'storage.db'}"
    upgrade(url)
    return load_settings(
        {}, database={"url": url}, storage={"file_storage_path": tmp_path / "files"}
    )


def test_stopping_while_the_warm_up_is_in_a_query_ends_the_loop(embedded: Settings) -> None:
    gate = _Gate()

    class _HeldMaintenance(SqlEvaluationMaintenance):
        def __init__(self, session: AsyncSession) -> None:
            super().__init__(session)
            self._held_session = session

        async def recently_updated(self, limit: int) -> list[Evaluation]:
            await gate.hold_in(self._held_session)
            return await super().recently_updated(limit)

    class _HeldWarmUp(Provider):
        maintenance = provide(
            _HeldMaintenance, provides=EvaluationMaintenance, scope=Scope.REQUEST, override=True
        )

    with TestClient(create_app(embedded)) as writer:
        for i in range(3):
            assert writer.post("/evaluations", json={"id": f"h-{i}", "code": "x"}).is_success

    client = TestClient(create_app(embedded, _HeldWarmUp()))
    client.__enter__()
    try:
        assert gate.entered.wait(10), "the warm-up never reached its query"
        loop = client.blocking_portal.call(asyncio.get_running_loop)
    except BaseException:
        gate.released.set()
        client.__exit__(None, None, None)
        raise
    _ends_within(lambda: client.__exit__(None, None, None), loop, gate)


def test_stopping_a_periodic_job_in_a_query_ends_the_loop(tmp_path: Path) -> None:
    gate = _Gate()
    loops: list[asyncio.AbstractEventLoop] = []
    stop = threading.Event()

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
        try:

            async def job(_: anyio.Event) -> None:  # deaf to the stop: it is inside its query
                async with AsyncSession(engine) as session:
                    await gate.hold_in(session)

            async with background.periodic("held", 3600, job):
                await anyio.to_thread.run_sync(stop.wait)
        finally:
            await engine.dispose()

    runner = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    runner.start()
    assert gate.entered.wait(10), "the job never reached its query"

    def stop_and_wait() -> None:
        stop.set()
        runner.join()

    _ends_within(stop_and_wait, loops[0], gate)
