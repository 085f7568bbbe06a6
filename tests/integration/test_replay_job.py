"""The background replayer: outlives a journal it cannot read, ends between entries at the stop."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from dishka import make_async_container

from application.failover.primary import PrimaryState
from application.ports.journal import Journal
from infrastructure.clock import SystemClock
from infrastructure.files.journal import FileJournal
from interfaces.providers import build_providers
from interfaces.replay import ContainerReplayScopes, _publish_state, _replay_forever
from interfaces.settings import Settings
from tests.integration.test_cli_replay import leave_journal

pytestmark = pytest.mark.anyio


async def test_an_unreadable_segment_is_reported_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = FileJournal(tmp_path)
    clock = SystemClock()
    (journal.directory / "broken.jsonl").mkdir(parents=True)  # a segment that cannot be read
    with pytest.raises(IsADirectoryError):
        await journal.stats()

    assert await _publish_state(journal, PrimaryState(clock), clock) is None
    assert "cannot read the failover journal" in caplog.text

    (journal.directory / "broken.jsonl").rmdir()
    assert await _publish_state(journal, PrimaryState(clock), clock) == 0


async def test_the_replayer_stops_between_two_entries_when_the_app_stops(
    backend_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(backend_settings.storage.file_storage_path)
    await anyio.to_thread.run_sync(leave_journal, root, "stop-1")
    stopping = anyio.Event()
    replayed: list[str] = []
    open_scope = ContainerReplayScopes.open

    @asynccontextmanager
    async def open_then_stop(scopes: ContainerReplayScopes, context: Any) -> AsyncIterator[Any]:
        async with open_scope(scopes, context) as unit:
            yield unit
        if context.journal_entry is not None:
            replayed.append(context.journal_entry)
            stopping.set()  # the app stops while the first entry is being replayed

    monkeypatch.setattr(ContainerReplayScopes, "open", open_then_stop)
    container = make_async_container(
        *build_providers(backend_settings), context={Settings: backend_settings}
    )
    try:
        with anyio.fail_after(10):
            await _replay_forever(container, 0.1, stopping)
        journal = await container.get(Journal)
        assert len(replayed) == 1
        assert (await journal.stats()).pending == 2  # the rest waits for the next start
    finally:
        await container.close()
