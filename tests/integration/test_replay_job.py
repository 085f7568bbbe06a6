"""The background replayer outlives a journal it cannot read for a while."""

from pathlib import Path

import pytest

from application.services.primary_state import PrimaryState
from infrastructure.clock import SystemClock
from infrastructure.files.journal import FileJournal
from interfaces.replay import _publish_state

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
