"""Kill Redis while the service is under load: no request fails, every answer is right.

The service runs on PostgreSQL and a private ``redis-server`` (never the shared
one), served by uvicorn so requests really overlap. Workers create, update,
read, tail logs and list running evaluations while Redis is killed and later
restarted empty; each worker owns its evaluations, so it knows every answer.
"""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis

from interfaces.http.app import create_app
from interfaces.settings import Settings, load_settings
from tests.integration.redis_process import RedisProcess, private_redis_server
from tests.services import migrated_postgres_database, serve_in_thread

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.redis]

WORKERS = 4
EVALS_EACH = 3
OUTAGE_AFTER_S = 1.0
OUTAGE_FOR_S = 2.0
LOAD_FOR_S = 5.0
RECOVERY_S = 10.0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    (tmp_path / "redis").mkdir()
    with private_redis_server(tmp_path / "redis") as process:
        yield process


@pytest.fixture
def settings(private_redis: RedisProcess, tmp_path: Path) -> Iterator[Settings]:
    with migrated_postgres_database() as url:
        yield load_settings(
            {},
            database={"url": url},
            storage={"file_storage_path": tmp_path / "files"},
            redis={"url": private_redis.url, "timeout_s": 0.2},
        )


async def _healthy_within(client: httpx.AsyncClient, limit_s: float) -> bool:
    with anyio.move_on_after(limit_s):
        while True:
            if (await client.get("/health")).json()["status"] == "healthy":
                return True
            await anyio.sleep(0.1)
    return False


class Worker:
    """Drives its own evaluations and checks every answer against what it wrote."""

    def __init__(self, client: httpx.AsyncClient, name: str) -> None:
        self.client = client
        self.ids = [f"eval_20240701_120000_{name}{index:02d}" for index in range(EVALS_EACH)]
        self.counts = dict.fromkeys(self.ids, 0)
        self.logs = dict.fromkeys(self.ids, "")
        self.requests = 0
        self.failures: list[str] = []

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.requests += 1
        response = await self.client.request(method, path, **kwargs)
        if not response.is_success:
            self.failures.append(f"{method} {path}: {response.status_code} {response.text}")
            return None
        return response.json()

    async def start(self) -> None:
        for evaluation_id in self.ids:
            await self.call("POST", "/evaluations", json={"id": evaluation_id, "code": "x"})
            await self.call("PUT", f"/evaluations/{evaluation_id}", json={"status": "running"})

    async def round(self, step: int) -> None:
        evaluation_id = self.ids[step % len(self.ids)]
        self.counts[evaluation_id] += 1
        count = self.counts[evaluation_id]
        body = await self.call(
            "PUT", f"/evaluations/{evaluation_id}", json={"metadata": {"count": count}}
        )
        assert body is None or body["metadata"]["count"] == count
        record = await self.call("GET", f"/evaluations/{evaluation_id}")
        assert record is None or record["metadata"]["count"] == count, "a stale record"

        line = f"{evaluation_id} {count}\n"
        chunk = await self.call(
            "POST", f"/evaluations/{evaluation_id}/logs", json={"content": line}
        )
        if chunk is not None:
            self.logs[evaluation_id] += line
        seen = len(self.logs[evaluation_id].encode()) - len(line.encode())
        tail = await self.call(
            "GET", f"/evaluations/{evaluation_id}/logs", params={"offset": max(seen, 0)}
        )
        assert tail is None or tail["content"] == line, "a stale or broken log tail"

        running = await self.call("GET", "/evaluations/running")
        if running is not None:
            listed = {item["eval_id"] for item in running["running_evaluations"]}
            assert set(self.ids) <= listed, "a running evaluation is missing from the list"


async def test_killing_redis_under_load_fails_no_request(
    settings: Settings, private_redis: RedisProcess
) -> None:
    health: list[tuple[float, str]] = []
    with serve_in_thread(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            workers = [Worker(client, f"w{index}") for index in range(WORKERS)]
            for worker in workers:
                await worker.start()
            began = time.monotonic()
            stop = anyio.Event()

            async def load(worker: Worker) -> None:
                step = 0
                while not stop.is_set():
                    await worker.round(step)
                    step += 1

            async def watch_health() -> None:
                while not stop.is_set():
                    response = await client.get("/health")
                    health.append((time.monotonic() - began, response.json()["status"]))
                    assert response.status_code == 200, response.text
                    await anyio.sleep(0.1)

            async def outage() -> None:
                await anyio.sleep(OUTAGE_AFTER_S)
                private_redis.kill()
                await anyio.sleep(OUTAGE_FOR_S)
                private_redis.start()  # back, and empty: the cache and registry were lost
                await anyio.sleep(LOAD_FOR_S - OUTAGE_AFTER_S - OUTAGE_FOR_S)
                stop.set()

            async with anyio.create_task_group() as group:
                for worker in workers:
                    group.start_soon(load, worker)
                group.start_soon(watch_health)
                group.start_soon(outage)

            failures = [failure for worker in workers for failure in worker.failures]
            assert failures == [], failures[:5]
            assert sum(worker.requests for worker in workers) > 200

            states_down = {
                state
                for at, state in health
                if OUTAGE_AFTER_S + 0.5 < at < OUTAGE_AFTER_S + OUTAGE_FOR_S
            }
            assert states_down == {"degraded"}, health
            # Back while the load goes on. The client's 0.2 s timeout may bypass Redis again
            # for a second on a loaded machine, so the last sample need not be healthy;
            # once the load stops, the service must be.
            restarted = OUTAGE_AFTER_S + OUTAGE_FOR_S
            assert "healthy" in {state for at, state in health if at > restarted}, health
            assert await _healthy_within(client, RECOVERY_S), health

            # Used again without a restart: a read puts the record back into Redis.
            evaluation_id = workers[0].ids[0]
            assert (await client.get(f"/evaluations/{evaluation_id}")).is_success
    keys = redis.Redis.from_url(private_redis.url)
    try:
        assert keys.exists(f"eval:{{{evaluation_id}}}")
    finally:
        keys.close()
