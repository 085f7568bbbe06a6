"""AuditLog contract: entries commit with the change, come back newest first, filtered."""

from datetime import timedelta

import pytest

from application.ports.audit_log import AuditQuery
from domain.audit import AuditAction, AuditEntry
from tests.contract.conftest import BASE_TIME, PortStore

pytestmark = pytest.mark.anyio


def _entry(seconds: int, **fields: object) -> AuditEntry:
    values: dict[str, object] = {
        "at": BASE_TIME + timedelta(seconds=seconds),
        "actor": "ci",
        "action": AuditAction.UPDATE,
        "evaluation_id": "eval-a",
        **fields,
    }
    return AuditEntry(**values)  # type: ignore[arg-type]


async def _fill(store: PortStore) -> None:
    async with store.session() as ports:
        await ports.audit.append(_entry(0, fields=("output", "status"), sizes={"output": 9}))
        await ports.audit.append(_entry(1, actor="ops", action=AuditAction.DELETE))
        await ports.audit.append(_entry(2, evaluation_id="eval-b", request_id="req-7"))
        await ports.audit.append(_entry(3, evaluation_id=None, action=AuditAction.MAINTENANCE))


async def test_entries_round_trip_newest_first(sql_backend: PortStore) -> None:
    await _fill(sql_backend)
    async with sql_backend.session() as ports:
        entries = await ports.audit.list(AuditQuery())

    assert [e.at for e in entries] == [BASE_TIME + timedelta(seconds=s) for s in (3, 2, 1, 0)]
    assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)  # type: ignore[type-var]
    oldest = entries[-1]
    assert (oldest.fields, oldest.sizes, oldest.request_id) == (
        ("output", "status"),
        {"output": 9},
        None,
    )
    assert entries[1].request_id == "req-7"
    assert entries[0].evaluation_id is None


@pytest.mark.parametrize(
    ("query", "expected_seconds"),
    [
        (AuditQuery(evaluation_id="eval-a"), [1, 0]),
        (AuditQuery(actor="ops"), [1]),
        (AuditQuery(action=AuditAction.MAINTENANCE), [3]),
        (AuditQuery(since=BASE_TIME + timedelta(seconds=1)), [3, 2, 1]),
        (AuditQuery(until=BASE_TIME + timedelta(seconds=1)), [0]),
        (AuditQuery(limit=1), [3]),
    ],
)
async def test_filters(
    sql_backend: PortStore, query: AuditQuery, expected_seconds: list[int]
) -> None:
    await _fill(sql_backend)
    async with sql_backend.session() as ports:
        entries = await ports.audit.list(query)
    assert [int((e.at - BASE_TIME).total_seconds()) for e in entries] == expected_seconds


async def test_keyset_pages_cover_everything_once(sql_backend: PortStore) -> None:
    await _fill(sql_backend)
    seen: list[int] = []
    before: int | None = None
    async with sql_backend.session() as ports:
        while page := await ports.audit.list(AuditQuery(limit=3, before_id=before)):
            seen.extend(e.id for e in page)  # type: ignore[misc]
            before = page[-1].id
    assert len(seen) == len(set(seen)) == 4


async def test_an_entry_rolls_back_with_its_transaction(sql_backend: PortStore) -> None:
    async with sql_backend.session() as ports:
        await ports.audit.append(_entry(0))
        await ports.uow.rollback()
    async with sql_backend.session() as ports:
        remaining = await ports.audit.list(AuditQuery())
    # The memory backend applies every write at once and cannot undo (MemoryUnitOfWork).
    assert len(remaining) == (1 if sql_backend.kind == "memory" else 0)
