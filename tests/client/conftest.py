"""The client against the real service: in a thread on both configurations (embedded,
PostgreSQL + Redis), and as its own process where a test stops and starts it.

``either_client`` runs each test body once with ``StorageClient`` and once with
``AsyncStorageClient``, the async one driven from the test through a blocking facade,
so every scenario is written once and checked on both.
"""

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from crucible_storage import AsyncStorageClient, Backoff, StorageClient

import tests.services
from tests.integration.conftest import app_server, backend_settings

__all__ = ["app_server", "backend_settings"]

FAST = Backoff(base=0.05, cap=0.5)


class Blocking:
    """A blocking view of an async object: coroutines are awaited and async iterators
    pulled one item at a time on a loop in another thread."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if callable(value):
            return self._wrap(value)
        if hasattr(value, "__dict__") and not isinstance(value, type):
            return Blocking(value, self._loop)
        return value

    def _wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            if isinstance(result, Coroutine):
                return self._await(result)
            if isinstance(result, AsyncIterator):
                return self._iterate(result)
            return result

        return call

    def _await(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=120)

    def _iterate(self, iterator: AsyncIterator[Any]) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self._await(anext(iterator))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            self._await(iterator.aclose())  # type: ignore[attr-defined]


def blocking_async_client(base: str, **options: Any) -> Iterator[Any]:
    """An ``AsyncStorageClient`` on its own event loop thread, seen through ``Blocking``."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def make() -> AsyncStorageClient:
        return AsyncStorageClient(base, **options)

    client = asyncio.run_coroutine_threadsafe(make(), loop).result()
    try:
        yield Blocking(client, loop)
    finally:
        asyncio.run_coroutine_threadsafe(client.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def open_client(kind: str, base: str, **options: Any) -> Iterator[Any]:
    options.setdefault("backoff", FAST)
    if kind == "sync":
        with StorageClient(base, **options) as client:
            yield client
    else:
        yield from blocking_async_client(base, **options)


@pytest.fixture(params=["sync", "async"])
def either_client(request: pytest.FixtureRequest, app_server: str) -> Iterator[Any]:
    """The sync or the async client (blocking facade) on the service of this configuration."""
    yield from open_client(request.param, app_server)


@pytest.fixture
def service_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a service run as its own process, on a data set of this test."""
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'storage.db'}",
        "FILE_STORAGE_PATH": str(tmp_path / "files"),
        "LOG_LEVEL": "WARNING",
    }


def start_on(
    port: int, env: dict[str, str], log: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, str]:
    """``start_server`` on a port of our choosing, so a restart keeps the client's URL."""
    monkeypatch.setattr(tests.services, "free_port", lambda: port)
    process, base = tests.services.start_server(env, log)
    monkeypatch.undo()
    return process, base
