"""The database inspector's figures agree with the records after every kind of change,
without reading a whole table (counters, the index of soft-deleted records, the catalog).
"""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.sql import inspector as sql_inspector
from infrastructure.sql.tenancy import bind_tenant
from tests.contract.conftest import BASE_TIME, PortStore, SqlPortStore, make_evaluation
from tests.contract.query_records import add, append_timeline, delete

pytestmark = pytest.mark.anyio


async def _purge(store: SqlPortStore, *ids: str) -> None:
    """What ``cleanup`` does to a record: its row goes, its events and chunks with it."""
    async with store.session_maker() as session:
        bind_tenant(session, DEFAULT_TENANT)
        await session.execute(
            sa.text("DELETE FROM evaluations WHERE tenant_id = :tenant AND id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"tenant": DEFAULT_TENANT, "ids": list(ids)},
        )
        await session.commit()


async def test_overview_figures_follow_writes_deletes_and_purges(sql_backend: PortStore) -> None:
    await add(
        sql_backend,
        make_evaluation("old", created_at=BASE_TIME - timedelta(days=9)),
        make_evaluation("older-gone", created_at=BASE_TIME - timedelta(days=30)),
        *[make_evaluation(f"n{index}") for index in range(5)],
    )
    await append_timeline(sql_backend, "n0", events=["a", "b", "c"], logs=["x", "y"])
    await append_timeline(sql_backend, "older-gone", events=["d"], logs=["z"])
    await delete(sql_backend, "older-gone")
    await delete(sql_backend, "n4")

    report = await sql_backend.inspector.inspect()
    assert report.metrics["evaluations"] == 5
    assert report.metrics["deleted"] == 2
    assert report.metrics["events"] == 3  # of live records, as /statistics counts them
    assert report.metrics["log_chunks"] == 3
    assert report.metrics["oldest_record"] == (BASE_TIME - timedelta(days=9)).isoformat()

    if not isinstance(sql_backend, SqlPortStore):
        return
    await _purge(sql_backend, "older-gone", "n3")
    report = await sql_backend.inspector.inspect(detailed=True)
    assert report.metrics["evaluations"] == 4
    assert report.metrics["deleted"] == 1
    assert report.metrics["log_chunks"] == 2
    assert report.details["evaluations_rows"] == 5
    assert report.details["evaluation_events_rows"] == 3
    assert report.details["estimated_row_counts"] == ""


async def test_an_empty_database(sql_backend: PortStore) -> None:
    report = await sql_backend.inspector.inspect()
    assert report.status == "healthy"
    assert (report.metrics["evaluations"], report.metrics["deleted"]) == (0, 0)
    assert (report.metrics["events"], report.metrics["log_chunks"]) == (0, 0)
    assert report.metrics["oldest_record"] is None


async def test_large_tables_are_estimated_and_named(
    sql_backend: PortStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above ``EXACT_ROWS_BELOW`` PostgreSQL's running estimate stands in for a count; the
    records' own figures stay exact. SQLite and the memory store count exactly whatever
    the size, and name nothing as estimated."""
    await add(sql_backend, *[make_evaluation(f"e{index}") for index in range(3)])
    await append_timeline(sql_backend, "e0", events=["a"], logs=["x"])
    monkeypatch.setattr(sql_inspector, "EXACT_ROWS_BELOW", 0)

    report = await sql_backend.inspector.inspect(detailed=True)
    if sql_backend.kind not in {"postgres", "postgres-sqlalchemy"}:
        assert report.details.get("estimated_row_counts", "") == ""  # memory has no tables
        assert (report.metrics["evaluations"], report.metrics["events"]) == (3, 1)
        return
    estimated = str(report.details["estimated_row_counts"]).split(", ")
    assert "evaluations" not in estimated
    assert {"evaluation_events", "log_chunks", "audit_log", "journal_applied"} <= set(estimated)
    assert report.details["evaluations_rows"] == 3
    assert report.metrics["evaluations"] == 3
    assert report.metrics["events"] == 1
    for name in estimated:
        rows: object = report.details[f"{name}_rows"]  # object: MetricValue has no int
        assert isinstance(rows, int)
        assert rows >= 0


async def test_the_figures_are_the_inspected_tenants(sql_backend: PortStore) -> None:
    """Another tenant's records are not counted (under row-level security they could not
    be: the inspector's session sets its tenant)."""
    await add(sql_backend, make_evaluation("mine"))
    async with sql_backend.session(TenantId("acme")) as ports:
        for name in ("theirs-1", "theirs-2", "mine"):
            await ports.repository.add(
                make_evaluation(name, created_at=BASE_TIME - timedelta(days=1))
            )

    report = await sql_backend.inspector.inspect()

    assert report.metrics["evaluations"] == 1
    assert report.metrics["oldest_record"] == BASE_TIME.isoformat()
