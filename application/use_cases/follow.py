"""Streams over the change hub: the feed, and one evaluation's log, as they change."""

from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import msgspec

from application.ports.change_feed import ChangeQuery
from application.services.change_hub import PAGE, ChangeHub, ReadPage
from application.use_cases.logs import EvaluationLogs
from domain.changes import START, Change, ChangeCursor, ChangeKind
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.timeline import LogSlice

ReadLogs = Callable[[EvaluationId, int], Awaitable[EvaluationLogs]]

# What wakes a log stream: its evaluation's log grew, its status moved, it went away.
_LOG_KINDS = frozenset(
    {ChangeKind.LOG_APPENDED, ChangeKind.STATUS_CHANGED, ChangeKind.DELETED, ChangeKind.PURGED}
)


def _wanted(change: Change, query: ChangeQuery) -> bool:
    return (query.evaluation_id is None or change.evaluation_id == query.evaluation_id) and (
        not query.kinds or change.kind in query.kinds
    )


async def follow_changes(
    hub: ChangeHub, read: ReadPage, query: ChangeQuery, keepalive_s: float
) -> AsyncIterator[Change | None]:
    """The changes ``query`` asks for after ``query.after``, as they commit, for ever.

    ``None`` is yielded after ``keepalive_s`` without a change (a stream's keepalive).
    Must run inside ``hub.stream()``. A cursor older than the hub's buffer is caught up
    from the database page by page first; nothing is skipped on the way to the buffer.
    """
    cursor = query.after or START
    while True:
        signal = hub.signal()
        buffered = hub.after(cursor)
        if buffered is None:
            horizon = hub.head  # read by the hub before this page, so the page covers it
            page = await read(msgspec.structs.replace(query, after=cursor, limit=PAGE))
            for change in page.changes:
                yield change
            cursor = max(page.reached or cursor, cursor)
            if page.full:
                continue
            if horizon is not None:
                cursor = max(cursor, horizon)
                continue
        else:
            for change in buffered:
                if _wanted(change, query):
                    yield change
            if buffered:
                cursor = buffered[-1].cursor
                continue
        if not await _wait(signal, keepalive_s):
            yield None


async def _wait(signal: anyio.Event, seconds: float) -> bool:
    """Wait for ``signal``; ``False`` after ``seconds`` without it."""
    with anyio.move_on_after(seconds):
        await signal.wait()
        return True
    return False


async def follow_log(
    hub: ChangeHub, read: ReadLogs, evaluation_id: EvaluationId, offset: int, keepalive_s: float
) -> AsyncIterator[LogSlice | EvaluationStatus | None]:
    """The log of one evaluation from byte ``offset``, as it grows, until it is final.

    Yields each new piece of the log, ``None`` after ``keepalive_s`` without one, and
    last the terminal status once the record has one (the log is then read from the
    log store, complete). Must run inside ``hub.stream()``; raises what reading the log
    raises (``EvaluationNotFoundError`` for an unknown or deleted evaluation).
    """
    while True:
        signal, mark = hub.signal(), hub.head
        logs = await read(evaluation_id, offset)
        if logs.log.content:
            yield logs.log
            offset = logs.log.next_offset
        if logs.evaluation.status.is_terminal:
            yield logs.evaluation.status
            return
        if not await _wait_for(hub, signal, mark, evaluation_id, keepalive_s):
            yield None


async def _wait_for(
    hub: ChangeHub,
    signal: anyio.Event,
    mark: ChangeCursor | None,
    evaluation_id: EvaluationId,
    seconds: float,
) -> bool:
    """Wait until the hub reads a change of ``evaluation_id`` (or cannot tell); ``False``
    after ``seconds`` without one (then the caller reads once anyway)."""
    with anyio.move_on_after(seconds):
        while True:
            await signal.wait()
            signal = hub.signal()
            seen = None if mark is None else hub.after(mark)
            if seen is None or any(
                c.evaluation_id == evaluation_id and c.kind in _LOG_KINDS for c in seen
            ):
                return True
            mark = hub.head
    return False
