"""The relay of the change feed to NATS JetStream, against a real nats-server.

Every change reaches a JetStream consumer once, in feed order, with its cursor as the
message id; a relay killed mid-stream and started again, or two relays at once, skip
nothing and store nothing twice; a NATS that does not answer is an error, not a hang.
"""

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from dishka import make_async_container
from litestar.testing import TestClient

from application.ports.change_sink import ChangeSinkUnavailableError
from application.use_cases.relay_changes import RelayProgress
from domain.tenancy import DEFAULT_TENANT
from infrastructure.sql.migrate import upgrade
from interfaces.http.app import create_app
from interfaces.providers import build_providers
from interfaces.relay import relay
from interfaces.settings import Settings, load_settings
from tests.integration.conftest import ClientFactory
from tests.nats_server import (
    JetStreamNames,
    Received,
    consume,
    create_stream,
    jetstream_names,
    wait_for_messages,
)
from tests.services import free_port

pytestmark = pytest.mark.nats


@pytest.fixture
def names() -> Iterator[JetStreamNames]:
    with jetstream_names() as fresh:
        yield fresh


def _write(client: TestClient[Any], evaluations: int, tag: str = "a") -> None:
    """Four changes per evaluation: created, status_changed, log_appended, event_recorded."""
    for n in range(evaluations):
        evaluation_id = f"eval_20240101_000000_{tag}{n:05x}"
        for method, path, body in [
            ("POST", "/evaluations", {"id": evaluation_id, "code": "print(1)"}),
            ("PUT", f"/evaluations/{evaluation_id}", {"status": "running"}),
            ("POST", f"/evaluations/{evaluation_id}/logs", {"content": "line\n"}),
            ("POST", f"/evaluations/{evaluation_id}/events", {"type": "note"}),
        ]:
            response = client.request(method, path, json=body)
            assert response.status_code < 300, response.text


def _feed(client: TestClient[Any], count: int) -> list[dict[str, Any]]:
    """The whole feed as GET /changes gives it, once it holds ``count`` changes."""
    deadline = time.monotonic() + 30
    while True:
        items: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 500, **({"after": after} if after else {})}
            page = client.get("/changes", params=params).json()
            items += page["items"]
            after = page["next_cursor"]
            if not page["more"]:
                break
        if len(items) >= count:
            return items
        assert time.monotonic() < deadline, f"the feed holds {len(items)} of {count} changes"
        time.sleep(0.05)


def _assert_relayed(received: list[Received], feed: list[dict[str, Any]], subject: str) -> None:
    """The stream is the feed: same changes, same order, each once, cursor as message id."""
    assert [m.msg_id for m in received] == [c["cursor"] for c in feed]
    assert [m.body for m in received] == feed
    assert [m.subject for m in received] == [f"{subject}.{c['kind']}" for c in feed]


def test_changes_written_through_the_api_reach_a_consumer_in_feed_order(
    make_client: ClientFactory, names: JetStreamNames
) -> None:
    client = make_client(nats=names.settings())
    _write(client, 5)
    feed = _feed(client, 20)

    wait_for_messages(names, len(feed))
    received = asyncio.run(consume(names))

    _assert_relayed(received, feed, names.subject)
    assert {c["kind"] for c in feed} == {
        "created",
        "status_changed",
        "log_appended",
        "event_recorded",
    }


def _relay_env(settings: Settings, names: JetStreamNames) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": settings.database.url,
        "FILE_STORAGE_PATH": str(settings.storage.file_storage_path),
        "LOG_LEVEL": "INFO",
        **names.env(),
    }


def _start_relay(env: dict[str, str], log: Path) -> "subprocess.Popen[bytes]":
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli", "relay", "--every", "0.5"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def embedded(tmp_path: Path) -> Settings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'storage.db'}"
    upgrade(url)
    return load_settings({}, database={"url": url}, storage={"file_storage_path": tmp_path})


def test_a_relay_process_killed_mid_stream_resumes_without_gap_or_repeat(
    embedded: Settings, names: JetStreamNames, tmp_path: Path
) -> None:
    with TestClient(create_app(embedded)) as client:
        _write(client, 150)
        feed = _feed(client, 600)
    env = _relay_env(embedded, names)
    log = tmp_path / "relay.log"

    first = _start_relay(env, log)
    try:
        wait_for_messages(names, 50, timeout_s=60)
    finally:
        first.kill()  # SIGKILL: no chance to finish the page it is publishing
        first.wait(timeout=20)
    second = _start_relay(env, log)
    try:
        wait_for_messages(names, len(feed), timeout_s=60)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, log.read_text()
    finally:
        if second.poll() is None:
            second.kill()

    _assert_relayed(asyncio.run(consume(names)), feed, names.subject)
    assert "change(s) relayed; the stream's last cursor: " + feed[-1]["cursor"] in log.read_text()


async def _relays(settings: Settings, stopping: anyio.Event, count: int) -> list[RelayProgress]:
    """``count`` relays at once, each on a container of its own (as two replicas)."""
    results: list[RelayProgress] = []

    async def one() -> None:
        container = make_async_container(*build_providers(settings), context={Settings: settings})
        try:
            results.append(await relay(container, settings, DEFAULT_TENANT, stopping, page=7))
        finally:
            await container.close()

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    return results


def test_two_relays_at_once_store_every_change_once_in_order(
    make_client: ClientFactory, backend_settings: Settings, names: JetStreamNames
) -> None:
    client = make_client()
    _write(client, 40, "a")
    # A window too short to catch repeats: only the expected last sequence keeps them apart.
    asyncio.run(create_stream(names, duplicate_window_s=0.1))
    settings = backend_settings.changed(nats=names.settings())
    stopping_box: list[anyio.Event] = []
    results: list[list[RelayProgress]] = []

    async def both() -> None:
        stopping = anyio.Event()
        stopping_box.append(stopping)
        results.append(await _relays(settings, stopping, 2))

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(both(),), daemon=True)
    thread.start()
    try:
        _write(client, 40, "b")  # while both relay
        feed = _feed(client, 320)
        wait_for_messages(names, len(feed), timeout_s=60)
    finally:
        while not stopping_box:
            time.sleep(0.01)
        loop.call_soon_threadsafe(stopping_box[0].set)
        thread.join(timeout=30)
        loop.close()
    assert not thread.is_alive()

    _assert_relayed(asyncio.run(consume(names)), feed, names.subject)
    assert len(results[0]) == 2
    assert all(progress.cursor is not None for progress in results[0])


def test_a_nats_that_does_not_answer_is_an_error_naming_nats_url(
    embedded: Settings,
) -> None:
    settings = embedded.changed(nats={"url": f"nats://127.0.0.1:{free_port()}"})

    async def attempt() -> None:
        container = make_async_container(*build_providers(settings), context={Settings: settings})
        try:
            with anyio.fail_after(20):
                await relay(container, settings, DEFAULT_TENANT, anyio.Event())
        finally:
            await container.close()

    with pytest.raises(ChangeSinkUnavailableError, match="NATS_URL"):
        asyncio.run(attempt())
    # The service still starts and serves: its relay keeps trying in the background.
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
