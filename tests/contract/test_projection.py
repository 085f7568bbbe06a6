"""Projections (``fields=``): every adapter reads only the named fields, with the same values."""

from datetime import timedelta
from typing import Any

import pytest

from application.queries import (
    PROJECTABLE_FIELDS,
    EvaluationFilter,
    EvaluationQuery,
    check_projection,
    project,
)
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.payload import PayloadLocation, StoredPayload
from domain.status import EvaluationStatus
from tests.contract.conftest import BASE_TIME, PortStore, make_evaluation

pytestmark = pytest.mark.anyio


def _record(name: str, seconds: int = 0, **fields: Any) -> Evaluation:
    return make_evaluation(
        name,
        code="print('x')\n" * 50,
        created_at=BASE_TIME + timedelta(seconds=seconds),
        metadata={"k": ["v", 1]},
        output=StoredPayload(PayloadLocation.FILE, size=200_000, text="pre", key="k/o.txt"),
        **fields,
    )


async def test_get_fields_returns_only_what_was_asked(sql_backend: PortStore) -> None:
    record = _record("p1", status=EvaluationStatus.RUNNING, runtime_ms=12)
    async with sql_backend.session() as ports:
        await ports.repository.add(record)
    wanted = check_projection(frozenset({"status", "created_at", "output", "metadata"}))

    async with sql_backend.session() as ports:
        found = await ports.repository.get_fields(record.id, wanted)

    assert found == {
        "id": "p1",
        "version": 1,
        "status": EvaluationStatus.RUNNING,
        "created_at": BASE_TIME,
        "output": record.output,
        "metadata": {"k": ["v", 1]},
    }
    assert isinstance(found["status"], EvaluationStatus)


async def test_every_field_projects_as_the_whole_record_has_it(sql_backend: PortStore) -> None:
    record = _record("p2", runtime_ms=5, retries=3, executor_id="x")
    async with sql_backend.session() as ports:
        await ports.repository.add(record)

    async with sql_backend.session() as ports:
        found = await ports.repository.get_fields(record.id, PROJECTABLE_FIELDS)
        whole = await ports.repository.get(record.id)

    assert whole is not None
    assert found == project(whole, PROJECTABLE_FIELDS)


async def test_get_fields_of_unknown_or_deleted_is_none(sql_backend: PortStore) -> None:
    record = _record("p3")
    async with sql_backend.session() as ports:
        await ports.repository.add(record)
        stored = await ports.repository.get(record.id)
        assert stored is not None
        stored.deleted_at = BASE_TIME
        stored.touch(BASE_TIME)
        await ports.repository.update(stored, 1)

    async with sql_backend.session() as ports:
        assert await ports.repository.get_fields(record.id, frozenset({"id", "version"})) is None
        assert await ports.repository.get_fields(EvaluationId("nope"), frozenset({"id"})) is None


async def test_list_fields_pages_like_list(sql_backend: PortStore) -> None:
    records = [
        _record(f"q{i:02d}", seconds=i // 3, language="rust" if i % 2 else "python")
        for i in range(11)
    ]
    async with sql_backend.session() as ports:
        for record in records:
            await ports.repository.add(record)
    wanted = check_projection(frozenset({"status"}))
    query_filter = EvaluationFilter(language="python")

    async with sql_backend.session() as ports:
        full = await ports.pages.list(EvaluationQuery(filter=query_filter, limit=100))
    seen: list[dict[str, object]] = []
    cursor = None
    for _ in range(10):
        query = EvaluationQuery(filter=query_filter, limit=2, cursor=cursor, include_total=True)
        async with sql_backend.session() as ports:
            page = await ports.pages.list_fields(query, wanted)
        assert page.total == 6
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == [
        {"id": e.id, "version": 1, "status": EvaluationStatus.QUEUED} for e in full.items
    ]
    assert len(seen) == 6


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        check_projection(frozenset({"status", "deleted_at"}))
