"""WarehouseScan contract: every backend gives the rows the shared mapping gives.

PostgreSQL shapes its rows in SQL (Arrow columns), the others map records in Python:
the values must agree (JSON compared as JSON: PostgreSQL writes ``{"a": 1}``).
"""

import json
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from application.ports.warehouse import RowBatch
from application.warehouse_rows import row_of
from domain.payload import PayloadLocation, StoredPayload
from domain.status import EvaluationStatus
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
            for key, value in values.pop("promoted").items():
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
            row async for batch in ports.warehouse.batches("c-1", PROMOTED) for row in _rows(batch)
        ]
        keys = await ports.warehouse.common_keys()

    expected = [_rows([row_of(e, "c-1", PROMOTED)])[0] for e in reversed(RECORDS)]
    assert [_canonical(row) for row in rows] == [_canonical(row) for row in expected]
    assert keys == ["user"]  # in two of three records: at least half


async def test_current_gives_the_live_ones_of_some_ids_with_their_cursors(
    sql_backend: PortStore,
) -> None:
    await _store(sql_backend)
    changed = {"wh-a": "c-7", "wh-gone": "c-8", "wh-unknown": "c-9"}

    async with sql_backend.session() as ports:
        batch, found = await ports.warehouse.current(changed, PROMOTED)

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
        rows = [r async for b in ports.warehouse.batches("c-2", [hostile]) for r in _rows(b)]
        again = [r async for b in ports.warehouse.batches("c-3", []) for r in _rows(b)]

    assert [(row["id"], row[f"metadata_{hostile}"]) for row in rows] == [("wh-h", "kept")]
    assert [row["id"] for row in again] == ["wh-h"]
