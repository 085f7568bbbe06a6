"""Cache warming at start: in the background, bounded, off by a setting, never fatal."""

import logging
import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from dishka import Provider, Scope, make_async_container, provide

from application.services.record_cache import RecordCache
from application.use_cases.warm_cache import WarmCache
from domain.evaluation import Evaluation
from domain.tenancy import TenantId
from interfaces import background
from interfaces.http import warming
from interfaces.providers import build_providers
from interfaces.settings import Settings, load_settings
from tests.integration.conftest import ClientFactory


def _cached_records(client: Any) -> int:
    details = client.get("/storage/cache/details").json()["details"]
    return int(details["keys_eval"])


def _warming(client: Any) -> dict[str, Any]:
    warming: dict[str, Any] = client.get("/storage/cache/details").json()["info"]["warming"]
    return warming


def client_classes(client: Any) -> dict[str, Any]:
    classes: dict[str, Any] = client.get("/storage/cache/details").json()["info"]["classes"]
    return classes


@pytest.mark.alone("counts every record in the shared cache")
def test_the_most_recent_records_are_warmed_at_start(make_client: ClientFactory) -> None:
    # Written without a cache, so only the warm-up of the next start can fill it.
    writer = make_client(cache={"enabled": False})
    for i in range(4):
        assert writer.post("/evaluations", json={"id": f"w-{i}", "code": "x"}).status_code == 200

    reader = make_client(cache={"warm_count": 3})

    deadline = time.monotonic() + 20
    while _cached_records(reader) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _cached_records(reader) == 3


@pytest.mark.alone("counts what this process's warm-up filled in the shared cache")
def test_the_hits_of_warmed_entries_are_counted(make_client: ClientFactory) -> None:
    writer = make_client(cache={"enabled": False})
    for i in range(3):
        assert writer.post("/evaluations", json={"id": f"wh-{i}", "code": "x"}).status_code == 200

    reader = make_client(cache={"warm_count": 2})  # the two most recent: wh-2 and wh-1
    deadline = time.monotonic() + 20
    while _warming(reader)["fills"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(3):
        assert reader.get("/evaluations/wh-2").status_code == 200  # warming's entry
    assert reader.get("/evaluations/wh-0").status_code == 200  # a miss, then filled
    assert reader.get("/evaluations/wh-0").status_code == 200  # a hit on a read's fill

    assert _warming(reader) == {"fills": 2, "hits": 3, "hit_share": 0.75}
    assert client_classes(reader)["records"]["hits"] == 4


@pytest.mark.alone("counts every warm-up of the process")
def test_no_warming_when_switched_off(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    async def record(_: Any, top: int, *__: Any) -> int:
        calls.append(top)
        return 0

    monkeypatch.setattr(warming, "warm_cache", record)
    make_client(cache={"warm_on_start": False})
    make_client(cache={"enabled": False})
    client = make_client(cache={"warm_count": 7})

    assert client.get("/health").status_code == 200
    assert calls == [7]


class _FailingWarmCache(Provider):
    @provide(scope=Scope.REQUEST)
    def warm(self) -> WarmCache:
        raise RuntimeError("database gone")


@pytest.mark.anyio
async def test_a_failed_warm_up_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    container = make_async_container(_FailingWarmCache())
    try:
        with caplog.at_level(logging.ERROR, logger="storage_service.cache"):
            assert await warming.warm_cache(container, 10) == 0
    finally:
        await container.close()
    assert "cache warming failed" in caplog.text


@pytest.mark.anyio
async def test_a_slow_warm_up_does_not_hold_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    started = anyio.Event()

    async def forever(*_: Any) -> int:  # deaf to the stop request
        started.set()
        await anyio.sleep_forever()
        return 0

    monkeypatch.setattr(warming, "warm_cache", forever)
    monkeypatch.setattr(background, "STOP_GRACE_S", 0.2)
    container = make_async_container(_FailingWarmCache())
    with anyio.fail_after(10):  # nor the stop: cancelled once the grace is over
        async with warming.cache_warming(container, load_settings({})):
            await started.wait()  # serving while the warm-up still runs
    await container.close()


class _CountingWarmCache:
    """Fills ``top`` records; the app stops (``stop_after``) while it fills."""

    def __init__(self, stopping: anyio.Event, stop_after: int) -> None:
        self._stopping = stopping
        self._stop_after = stop_after

    async def execute(self, top: int, on_record: Any = None, *, stop: Any) -> int:
        for i in range(top):
            if stop():
                return i
            if i == self._stop_after:
                self._stopping.set()
            await anyio.lowlevel.checkpoint()
        return top


@pytest.mark.anyio
@pytest.mark.parametrize(("stop_after", "loaded"), [(0, 1), (3, 4), (100, 10)])
async def test_the_warm_up_ends_after_the_record_in_flight_at_stop(
    stop_after: int, loaded: int
) -> None:
    stopping = anyio.Event()

    class _Counting(Provider):
        @provide(scope=Scope.REQUEST)
        def warm(self) -> WarmCache:
            return _CountingWarmCache(stopping, stop_after)  # type: ignore[return-value]

    container = make_async_container(_Counting())
    try:
        assert await warming.warm_cache(container, 10, stopping) == loaded
    finally:
        await container.close()


@pytest.mark.anyio
async def test_no_warm_up_once_the_app_stops(caplog: pytest.LogCaptureFixture) -> None:
    stopping = anyio.Event()
    stopping.set()
    container = make_async_container(_FailingWarmCache())
    try:
        with caplog.at_level(logging.ERROR, logger="storage_service.cache"):
            assert await warming.warm_cache(container, 10, stopping) == 0
    finally:
        await container.close()
    assert "cache warming failed" not in caplog.text  # WarmCache was never even built


@pytest.mark.anyio
async def test_the_warm_up_stops_between_two_records_when_the_app_stops(
    make_client: ClientFactory, backend_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = make_client(cache={"enabled": False})
    for i in range(5):
        assert writer.post("/evaluations", json={"id": f"s-{i}", "code": "x"}).status_code == 200
    stopping = anyio.Event()
    filled: list[str] = []
    fill = RecordCache.fill

    async def fill_then_stop(
        cache: RecordCache, tenant: TenantId, evaluation: Evaluation, *, warm: bool = False
    ) -> None:
        await fill(cache, tenant, evaluation, warm=warm)
        filled.append(evaluation.id)
        if len(filled) == 2:
            stopping.set()  # the app stops while the second record is being filled

    monkeypatch.setattr(RecordCache, "fill", fill_then_stop)
    container = make_async_container(
        *build_providers(backend_settings), context={Settings: backend_settings}
    )
    try:
        assert await warming.warm_cache(container, 5, stopping) == 2
    finally:
        await container.close()
    assert len(filled) == 2
