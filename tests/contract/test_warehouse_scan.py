"""WarehouseScan contract: every backend gives the rows the shared mapping gives.

PostgreSQL shapes its rows in SQL (Arrow columns), the others map records in Python:
the values must agree (JSON compared as JSON: PostgreSQL writes ``{"a": 1}``).
"""

import json
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from application.errors import EvaluationNotFoundError
from application.ports.warehouse import RowBatch, Table
from application.warehouse_rows import event_row, row_of
from domain.identifiers import EvaluationId
from domain.payload import PayloadLocation, StoredPayload
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT, TenantId
from domain.timeline import EvaluationEvent
from tests.contract.conftest import BASE_TIME, PortStore, make_evaluation

pytestmark = pytest.mark.anyio
PROMOTED = ["n", "nested", "user"]
RECORDS = [
    make_evaluation(
        "wh-a",
        created_at=BASE_TIME,
        metadata={"user": "ann", "n": 1, "nested": {"k": [1, 2]}},
        status=EvaluationStatus.COMPLETED,
        output=StoredPayload(PayloadLocation.FILE, 5000, "preview", key="k/out.txt"),
        error=StoredPayload(PayloadLocation.INLINE, 4, "boom"),
        runtime_ms=12,
        exit_code=0,
    ),
    make_evaluation("wh-b", created_at=BASE_TIME + timedelta(days=1), metadata={"user": None}),
    make_evaluation("wh-c", created_at=BASE_TIME + timedelta(days=2), metadata={}),
]
GONE = make_evaluation("wh-gone", created_at=BASE_TIME, deleted_at=BASE_TIME)


def _rows(batch: RowBatch) -> list[dict[str, Any]]:
    if isinstance(batch, list):
        found = []
        for row in batch:
            values = msgspec.structs.asdict(row)
            for key, value in values.pop("promoted", {}).items():
                values[f"metadata_{key}"] = value
            found.append(values)
        return found
    return batch.to_pylist()  # type: ignore[union-attr, no-any-return]


def _canonical(row: dict[str, Any]) -> dict[str, Any]:
    values = {**row, "metadata": json.loads(row["metadata"])}
    nested = values.get("metadata_nested")
    if nested is not None:
        values["metadata_nested"] = json.loads(nested)
    return values


async def _store(store: PortStore) -> None:
    async with store.session() as ports:
        for record in [*RECORDS, GONE]:
            await ports.repository.add(record)


async def test_a_scan_gives_every_live_record_newest_first(sql_backend: PortStore) -> None:
    await _store(sql_backend)

    async with sql_backend.session() as ports:
        rows = [
            row
            async for batch in ports.warehouse.batches(DEFAULT_TENANT, "c-1", PROMOTED)
            for row in _rows(batch)
        ]
        keys = await ports.warehouse.common_keys(DEFAULT_TENANT)

    expected = [_rows([row_of(e, "c-1", PROMOTED)])[0] for e in reversed(RECORDS)]
    assert [_canonical(row) for row in rows] == [_canonical(row) for row in expected]
    assert keys == ["user"]  # in two of three records: at least half


async def test_current_gives_the_live_ones_of_some_ids_with_their_cursors(
    sql_backend: PortStore,
) -> None:
    await _store(sql_backend)
    changed = {"wh-a": "c-7", "wh-gone": "c-8", "wh-unknown": "c-9"}

    async with sql_backend.session() as ports:
        batch, found = await ports.warehouse.current(DEFAULT_TENANT, changed, PROMOTED)

    rows = _rows(batch)
    assert found == {"wh-a"}
    assert [(row["id"], row["change_cursor"]) for row in rows] == [("wh-a", "c-7")]
    assert _canonical(rows[0]) == _canonical(_rows([row_of(RECORDS[0], "c-7", PROMOTED)])[0])


async def test_hostile_metadata_keys_are_values_not_sql(sql_backend: PortStore) -> None:
    hostile = "it's \\' ); DROP TABLE evaluations; --"
    record = make_evaluation("wh-h", metadata={hostile: "kept", "user": "x"})
    async with sql_backend.session() as ports:
        await ports.repository.add(record)

    async with sql_backend.session() as ports:
        rows = [
            r
            async for b in ports.warehouse.batches(DEFAULT_TENANT, "c-2", [hostile])
            for r in _rows(b)
        ]
        again = [
            r async for b in ports.warehouse.batches(DEFAULT_TENANT, "c-3", []) for r in _rows(b)
        ]

    assert [(row["id"], row[f"metadata_{hostile}"]) for row in rows] == [("wh-h", "kept")]
    assert [row["id"] for row in again] == ["wh-h"]


EVENTS = [
    EvaluationEvent(
        evaluation_id=EvaluationId("wh-a"),
        event_id="e-1",
        event_type="started",
        timestamp=BASE_TIME + timedelta(seconds=1),
        message="go",
        metadata={"node": "n1", "tries": [1, 2]},
    ),
    EvaluationEvent(
        evaluation_id=EvaluationId("wh-a"),
        event_id="e-2",
        event_type="finished",
        timestamp=BASE_TIME + timedelta(days=1),  # another day: another partition
    ),
    EvaluationEvent(
        evaluation_id=EvaluationId("wh-b"),
        event_id="e-1",
        event_type="started",
        timestamp=BASE_TIME + timedelta(days=1, seconds=3),
    ),
]
LOGS = [("wh-a", "line 1\n"), ("wh-b", "ünïcode\n"), ("wh-a", "line 2\n")]
STAMP = BASE_TIME + timedelta(minutes=5)


async def _store_timelines(store: PortStore) -> None:
    """Records, their events and logs; then ``wh-b`` is deleted (its timeline stays stored)."""
    await _store(store)
    async with store.session() as ports:
        for event in EVENTS:
            assert await ports.events.append(event)
        for evaluation_id, content in LOGS:
            await ports.logs.append(EvaluationId(evaluation_id), content, STAMP, last_update=STAMP)
    async with store.session() as ports:
        record = await ports.repository.get(EvaluationId("wh-c"))
        assert record is not None
        deleted = msgspec.structs.replace(record, deleted_at=STAMP, version=record.version + 1)
        await ports.repository.update(deleted, record.version)
        event = EvaluationEvent(
            evaluation_id=EvaluationId("wh-c"), event_id="e-9", event_type="x", timestamp=STAMP
        )
    async with store.session() as ports:
        with pytest.raises(EvaluationNotFoundError):
            await ports.events.append(event)


def _expected_events(cursors: dict[str, str]) -> list[dict[str, Any]]:
    return [
        _rows([event_row(e, cursors[e.evaluation_id])])[0]
        for e in EVENTS
        if e.evaluation_id in cursors
    ]


def _keyed(rows: list[dict[str, Any]], *key: str) -> list[dict[str, Any]]:
    """Rows without ``date`` (the partition), metadata as JSON, in key order."""
    found = [{**{k: v for k, v in row.items() if k != "date"}, **_json_of(row)} for row in rows]
    return sorted(found, key=lambda row: tuple(row[k] for k in key))


def _json_of(row: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": json.loads(row["metadata"])} if "metadata" in row else {}


async def test_the_events_of_every_live_evaluation_with_their_day(sql_backend: PortStore) -> None:
    await _store_timelines(sql_backend)

    async with sql_backend.session() as ports:
        batches = [
            _rows(b) async for b in ports.warehouse.timeline(DEFAULT_TENANT, Table.EVENTS, "c-1")
        ]
        changed = await ports.warehouse.timeline_of(
            DEFAULT_TENANT, Table.EVENTS, {"wh-a": "c-4", "wh-c": "c-5", "wh-unknown": "c-6"}
        )

    rows = [row for batch in batches for row in batch]
    expected = _expected_events({"wh-a": "c-1", "wh-b": "c-1"})
    assert _keyed(rows, "evaluation_id", "event_id") == _keyed(
        expected, "evaluation_id", "event_id"
    )
    days = {(row["evaluation_id"], row["event_id"]): str(row["date"]) for row in rows}
    assert days == {
        ("wh-a", "e-1"): "2024-07-01",
        ("wh-a", "e-2"): "2024-07-02",
        ("wh-b", "e-1"): "2024-07-02",
    }
    assert _keyed(_rows(changed), "event_id") == _keyed(
        _expected_events({"wh-a": "c-4"}), "event_id"
    )


async def test_the_log_pieces_of_every_live_evaluation_at_their_offsets(
    sql_backend: PortStore,
) -> None:
    await _store_timelines(sql_backend)

    async with sql_backend.session() as ports:
        rows = [
            r
            async for b in ports.warehouse.timeline(DEFAULT_TENANT, Table.LOGS, "c-1")
            for r in _rows(b)
        ]
        changed = _rows(
            await ports.warehouse.timeline_of(DEFAULT_TENANT, Table.LOGS, {"wh-b": "c-7"})
        )

    pieces = sorted(
        (r["evaluation_id"], r["byte_offset"], r["size"], r["content"], r["change_cursor"])
        for r in rows
    )
    assert pieces == [
        ("wh-a", 0, 7, "line 1\n", "c-1"),
        ("wh-a", 7, 7, "line 2\n", "c-1"),
        ("wh-b", 0, len("ünïcode\n".encode()), "ünïcode\n", "c-1"),
    ]
    assert all(row["created_at"] == STAMP and str(row["date"]) == "2024-07-01" for row in rows)
    assert [(r["evaluation_id"], r["content"], r["change_cursor"]) for r in changed] == [
        ("wh-b", "ünïcode\n", "c-7")
    ]


ACME = TenantId("acme")
# Another tenant's records (ids apart: an id is still one key across tenants).
ACME_RECORD = make_evaluation("wh-acme", created_at=BASE_TIME, metadata={"team": "acme"})


async def _store_two_tenants(store: PortStore) -> None:
    """The default tenant's records, events and logs, and one record of ``acme`` with its own."""
    await _store_timelines(store)
    async with store.session(ACME) as ports:
        await ports.repository.add(ACME_RECORD)
    async with store.session(ACME) as ports:
        event = EvaluationEvent(
            evaluation_id=ACME_RECORD.id, event_id="e-1", event_type="started", timestamp=STAMP
        )
        assert await ports.events.append(event)
        await ports.logs.append(ACME_RECORD.id, "acme line\n", STAMP, last_update=STAMP)


async def _everything(store: PortStore, tenant: TenantId) -> dict[str, set[str]]:
    """The ids each call of the scan gives for ``tenant``, asking for every id stored."""
    every: dict[str, str] = {e.id: "c-9" for e in [*RECORDS, ACME_RECORD]}
    async with store.session(tenant) as ports:
        scan = ports.warehouse
        rows = [r async for b in scan.batches(tenant, "c-1", []) for r in _rows(b)]
        current, found = await scan.current(tenant, every, [])
        timelines = {
            table: [r async for b in scan.timeline(tenant, table, "c-1") for r in _rows(b)]
            for table in (Table.EVENTS, Table.LOGS)
        }
        changed = {
            table: _rows(await scan.timeline_of(tenant, table, every))
            for table in (Table.EVENTS, Table.LOGS)
        }
        keys = await scan.common_keys(tenant)
    return {
        "batches": {row["id"] for row in rows},
        "current": {row["id"] for row in _rows(current)} | found,
        **{f"{t.value}": {r["evaluation_id"] for r in timelines[t]} for t in timelines},
        **{f"{t.value} of": {r["evaluation_id"] for r in changed[t]} for t in changed},
        "keys": set(keys),
    }


async def test_a_scan_gives_only_the_rows_of_the_tenant_it_names(sql_backend: PortStore) -> None:
    await _store_two_tenants(sql_backend)

    acme = await _everything(sql_backend, ACME)
    default = await _everything(sql_backend, DEFAULT_TENANT)

    assert acme == {
        "batches": {"wh-acme"},
        "current": {"wh-acme"},
        "events": {"wh-acme"},
        "logs": {"wh-acme"},
        "events of": {"wh-acme"},
        "logs of": {"wh-acme"},
        "keys": {"team"},
    }
    assert default == {
        "batches": {"wh-a", "wh-b"},
        "current": {"wh-a", "wh-b"},
        "events": {"wh-a", "wh-b"},
        "logs": {"wh-a", "wh-b"},
        "events of": {"wh-a", "wh-b"},
        "logs of": {"wh-a", "wh-b"},
        "keys": {"n", "nested", "user"},  # each in at least half of the two live records
    }
