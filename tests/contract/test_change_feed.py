"""ChangeFeed contract: the audit trail read as a feed, in order, paged and filtered."""

from datetime import timedelta

import anyio
import msgspec
import pytest

from application.ports.change_feed import ChangeQuery
from domain.audit import AuditAction, AuditEntry
from domain.changes import Change, ChangeCursor, ChangeKind
from domain.status import EvaluationStatus
from tests.contract.conftest import BASE_TIME, PortStore

pytestmark = pytest.mark.anyio


def _entry(
    seconds: int, action: AuditAction, evaluation_id: str | None, **fields: object
) -> AuditEntry:
    return AuditEntry(
        at=BASE_TIME + timedelta(seconds=seconds),
        actor="ci",
        action=action,
        evaluation_id=evaluation_id,
        **fields,  # type: ignore[arg-type]
    )


A, S = AuditAction, EvaluationStatus
ENTRIES = [
    _entry(0, A.CREATE, "eval-a", status=S.SUBMITTED, version=1),
    _entry(1, A.UPDATE, "eval-a", fields=("status",), status=S.RUNNING, version=2),
    _entry(2, A.APPEND_LOG, "eval-a", sizes={"content": 5}, version=3),
    _entry(3, A.MAINTENANCE, None),
    _entry(4, A.CREATE, "eval-b", status=S.QUEUED, version=1),
    _entry(5, A.RECORD_EVENT, "eval-b", fields=("event_type",)),
    _entry(6, A.UPDATE, "eval-a", fields=("output",), status=S.RUNNING, version=4),
    _entry(7, A.DELETE, "eval-b", fields=("deleted_at",), status=S.QUEUED, version=2),
]
KINDS = [
    ("eval-a", ChangeKind.CREATED),
    ("eval-a", ChangeKind.STATUS_CHANGED),
    ("eval-a", ChangeKind.LOG_APPENDED),
    ("eval-b", ChangeKind.CREATED),
    ("eval-b", ChangeKind.EVENT_RECORDED),
    ("eval-a", ChangeKind.UPDATED),
    ("eval-b", ChangeKind.DELETED),
]


async def _fill(store: PortStore) -> None:
    """Write ``ENTRIES`` in one transaction, and wait until the feed shows them.

    On PostgreSQL the feed shows a transaction's entries once every transaction that
    started before it has ended, in any database of the cluster (other tests' too).
    """
    async with store.session() as ports:
        for entry in ENTRIES:
            await ports.audit.append(entry)
    with anyio.fail_after(30):
        for _ in range(600):  # the feed can only be polled: nothing announces the horizon
            if len((await _read(store, ChangeQuery()))[0]) >= len(KINDS):
                return
            await anyio.sleep(0.05)


async def _read(store: PortStore, query: ChangeQuery) -> tuple[list[Change], ChangeCursor | None]:
    async with store.session() as ports:
        page = await ports.changes.read(query)
    return page.changes, page.reached


async def test_every_change_of_an_evaluation_comes_in_write_order(sql_backend: PortStore) -> None:
    await _fill(sql_backend)

    changes, reached = await _read(sql_backend, ChangeQuery())

    assert [(c.evaluation_id, c.kind) for c in changes] == KINDS
    assert [c.cursor for c in changes] == sorted(c.cursor for c in changes)
    assert reached == changes[-1].cursor
    moved = changes[1]
    assert (moved.status, moved.version, moved.fields, moved.at) == (
        EvaluationStatus.RUNNING,
        2,
        ("status",),
        BASE_TIME + timedelta(seconds=1),
    )
    assert changes[2].sizes == {"content": 5}
    assert changes[4].status is None


async def test_pages_follow_the_cursor_they_reached_without_gaps_or_repeats(
    sql_backend: PortStore,
) -> None:
    await _fill(sql_backend)
    seen: list[Change] = []
    after: ChangeCursor | None = None
    for _ in range(10):
        async with sql_backend.session() as ports:
            page = await ports.changes.read(ChangeQuery(after=after, limit=3))
        changes, reached = page.changes, page.reached
        if reached is None:
            break
        assert page.full == (len(changes) == 3)
        seen.extend(changes)
        after = reached

    assert [(c.evaluation_id, c.kind) for c in seen] == KINDS
    assert len({c.cursor for c in seen}) == len(KINDS)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (ChangeQuery(evaluation_id="eval-b"), [k for k in KINDS if k[0] == "eval-b"]),
        (
            ChangeQuery(kinds=frozenset({ChangeKind.STATUS_CHANGED})),
            [("eval-a", ChangeKind.STATUS_CHANGED)],
        ),
        (
            ChangeQuery(kinds=frozenset({ChangeKind.UPDATED, ChangeKind.DELETED})),
            [("eval-a", ChangeKind.UPDATED), ("eval-b", ChangeKind.DELETED)],
        ),
        (
            ChangeQuery(evaluation_id="eval-a", kinds=frozenset({ChangeKind.CREATED})),
            [("eval-a", ChangeKind.CREATED)],
        ),
        (ChangeQuery(evaluation_id="eval-z"), []),
        (ChangeQuery(since=BASE_TIME + timedelta(seconds=4)), KINDS[3:]),
    ],
)
async def test_filters_by_evaluation_and_kind(
    sql_backend: PortStore, query: ChangeQuery, expected: list[tuple[str, ChangeKind]]
) -> None:
    await _fill(sql_backend)

    changes, _ = await _read(sql_backend, query)

    assert [(c.evaluation_id, c.kind) for c in changes] == expected


async def test_a_page_that_matched_nothing_still_moves_the_cursor(sql_backend: PortStore) -> None:
    await _fill(sql_backend)
    everything, _ = await _read(sql_backend, ChangeQuery())
    status_move = everything[1].cursor
    query = ChangeQuery(after=status_move, kinds=frozenset({ChangeKind.STATUS_CHANGED}), limit=1)

    changes, reached = await _read(sql_backend, query)

    assert changes == []  # the next update changed the output, not the status
    assert reached == everything[5].cursor
    rest, _ = await _read(sql_backend, msgspec.structs.replace(query, after=reached))
    assert rest == []


async def test_latest_and_recorded_at(sql_backend: PortStore) -> None:
    async with sql_backend.session() as ports:
        assert await ports.changes.latest() is None
    await _fill(sql_backend)
    changes, _ = await _read(sql_backend, ChangeQuery())

    async with sql_backend.session() as ports:
        latest = await ports.changes.latest()
        first_at = await ports.changes.recorded_at(changes[0].cursor)
        unknown = await ports.changes.recorded_at(ChangeCursor(0, 10_000))

    assert latest == changes[-1].cursor
    assert first_at == BASE_TIME
    assert unknown is None
    after_latest, reached = await _read(sql_backend, ChangeQuery(after=latest))
    assert (after_latest, reached) == ([], None)
