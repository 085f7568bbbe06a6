"""Freezing the start-up heap counts the frozen objects only for a debug line: counting
walks every one of them (millions in a test process), on every app start."""

import gc
import logging
from collections.abc import Iterator

import pytest

from interfaces import heap


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    calls: list[int] = []

    def count() -> int:
        calls.append(1)
        return 42

    monkeypatch.setattr(gc, "get_freeze_count", count)
    yield calls
    heap.thaw()


def test_the_frozen_objects_are_not_counted_without_a_debug_line(
    counted: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=heap.__name__):
        heap.freeze_startup_objects()
    assert counted == []


def test_a_debug_line_says_how_many_were_frozen(
    counted: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=heap.__name__):
        heap.freeze_startup_objects()
    assert counted == [1]
    assert "froze 42 objects built at start-up" in caplog.text
