"""EvaluationQueries contract: filters, order, paging and statistics agree everywhere."""

from datetime import timedelta

import pytest

from application.queries import EvaluationFilter, EvaluationQuery, ListCursor
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.payload import PayloadLocation, StoredPayload
from domain.status import EvaluationStatus
from domain.timeline import EvaluationEvent
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.inspector import SqlDatabaseInspector
from interfaces.settings import DatabaseSettings
from tests.contract.conftest import BASE_TIME, PortStore, make_evaluation

pytestmark = pytest.mark.anyio


async def _add(store: PortStore, *records: Evaluation) -> None:
    async with store.session() as ports:
        for record in records:
            await ports.repository.add(record)


async def _list(store: PortStore, query: EvaluationQuery) -> tuple[list[str], object, object]:
    async with store.session() as ports:
        page = await ports.queries.list(query)
    return [e.id for e in page.items], page.next_cursor, page.total


async def _delete(store: PortStore, evaluation_id: str) -> None:
    async with store.session() as ports:
        record = await ports.repository.get(EvaluationId(evaluation_id))
        assert record is not None
        version = record.version
        record.deleted_at = BASE_TIME
        record.touch(BASE_TIME)
        await ports.repository.update(record, version)


async def test_newest_first_with_ties_broken_by_id(sql_backend: PortStore) -> None:
    await _add(
        sql_backend,
        make_evaluation("a", created_at=BASE_TIME),
        make_evaluation("b", created_at=BASE_TIME + timedelta(minutes=1)),
        make_evaluation("c", created_at=BASE_TIME),
        make_evaluation("d", created_at=BASE_TIME - timedelta(days=1)),
    )
    ids, cursor, total = await _list(sql_backend, EvaluationQuery())
    assert ids == ["b", "c", "a", "d"]
    assert cursor is None
    assert total == 4


async def test_each_filter(sql_backend: PortStore) -> None:
    await _add(
        sql_backend,
        make_evaluation("p1", language="python", status=EvaluationStatus.QUEUED),
        make_evaluation(
            "p2",
            language="python",
            status=EvaluationStatus.RUNNING,
            created_at=BASE_TIME + timedelta(hours=1),
        ),
        make_evaluation(
            "j1",
            language="javascript",
            status=EvaluationStatus.RUNNING,
            created_at=BASE_TIME + timedelta(hours=2),
        ),
        make_evaluation("gone", created_at=BASE_TIME + timedelta(hours=3)),
    )
    await _delete(sql_backend, "gone")

    async def ids(**criteria: object) -> list[str]:
        found, _, _ = await _list(
            sql_backend,
            EvaluationQuery(filter=EvaluationFilter(**criteria)),  # type: ignore[arg-type]
        )
        return found

    assert await ids() == ["j1", "p2", "p1"]
    assert await ids(status=EvaluationStatus.RUNNING) == ["j1", "p2"]
    assert await ids(language="python") == ["p2", "p1"]
    assert await ids(status=EvaluationStatus.RUNNING, language="python") == ["p2"]
    # created_after is inclusive, created_before exclusive.
    assert await ids(created_after=BASE_TIME + timedelta(hours=1)) == ["j1", "p2"]
    assert await ids(created_before=BASE_TIME + timedelta(hours=1)) == ["p1"]
    assert await ids(created_after=BASE_TIME, created_before=BASE_TIME + timedelta(hours=2)) == [
        "p2",
        "p1",
    ]
    assert await ids(id_prefix="p") == ["p2", "p1"]
    assert await ids(id_prefix="P") == []
    assert await ids(id_prefix="go") == []


async def test_id_prefix_treats_like_wildcards_literally(sql_backend: PortStore) -> None:
    await _add(
        sql_backend,
        make_evaluation("a_b-1"),
        make_evaluation("axb-2"),
        make_evaluation("a.b-3"),
    )

    async def ids(prefix: str) -> list[str]:
        found, _, _ = await _list(
            sql_backend, EvaluationQuery(filter=EvaluationFilter(id_prefix=prefix))
        )
        return sorted(found)

    assert await ids("a_") == ["a_b-1"]
    assert await ids("a%") == []
    assert await ids("%") == []
    assert await ids("a") == ["a.b-3", "a_b-1", "axb-2"]
    assert await ids("a\\") == []


@pytest.mark.parametrize("mode", ["offset", "cursor"])
async def test_paging_visits_every_record_once(sql_backend: PortStore, mode: str) -> None:
    # 23 records, many sharing one created_at, so ties cross page boundaries.
    records = [
        make_evaluation(f"e{i:02d}", created_at=BASE_TIME + timedelta(seconds=i // 5))
        for i in range(23)
    ]
    await _add(sql_backend, *records)
    expected, _, _ = await _list(sql_backend, EvaluationQuery(limit=100))
    assert len(expected) == 23

    seen: list[str] = []
    cursor: ListCursor | None = None
    offset = 0
    for _ in range(10):
        if mode == "cursor":
            query = EvaluationQuery(limit=4, cursor=cursor, include_total=True)
        else:
            query = EvaluationQuery(limit=4, offset=offset, include_total=True)
        async with sql_backend.session() as ports:
            page = await ports.queries.list(query)
        assert page.total == 23
        seen.extend(e.id for e in page.items)
        offset += len(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert len(set(seen)) == 23


async def test_cursor_paging_applies_filters(sql_backend: PortStore) -> None:
    await _add(
        sql_backend,
        *[
            make_evaluation(
                f"r{i}",
                language="python" if i % 2 else "go",
                created_at=BASE_TIME + timedelta(seconds=i),
            )
            for i in range(9)
        ],
    )
    query = EvaluationQuery(filter=EvaluationFilter(language="python"), limit=2)
    ids, cursor, _ = await _list(sql_backend, query)
    assert ids == ["r7", "r5"]
    assert isinstance(cursor, ListCursor)
    ids, cursor, _ = await _list(
        sql_backend,
        EvaluationQuery(filter=EvaluationFilter(language="python"), limit=2, cursor=cursor),
    )
    assert ids == ["r3", "r1"]
    # r1 is the last python record; an exact fit may still offer a cursor, which leads nowhere.
    if cursor is not None:
        assert isinstance(cursor, ListCursor)
        more, _, _ = await _list(
            sql_backend,
            EvaluationQuery(filter=EvaluationFilter(language="python"), limit=2, cursor=cursor),
        )
        assert more == []


async def test_total_counts_matches_not_the_page(sql_backend: PortStore) -> None:
    await _add(sql_backend, *[make_evaluation(f"t{i}") for i in range(5)])
    ids, cursor, total = await _list(sql_backend, EvaluationQuery(limit=2, include_total=True))
    assert len(ids) == 2
    assert total == 5
    assert cursor is not None
    _, _, total = await _list(sql_backend, EvaluationQuery(limit=2, offset=4))
    assert total == 5


async def test_total_is_exact_for_every_filter(sql_backend: PortStore) -> None:
    """Status and language totals come from the counters, the others from a count: both
    must match what the filter lists, deleted records and all."""
    S = EvaluationStatus
    records = [
        make_evaluation(f"tot-{i}", created_at=BASE_TIME + timedelta(minutes=i)) for i in range(12)
    ]
    for index, record in enumerate(records):
        record.status = [S.QUEUED, S.RUNNING, S.COMPLETED][index % 3]
        record.language = "python" if index % 2 else "rust"
    await _add(sql_backend, *records)
    await _delete(sql_backend, "tot-4")
    await _delete(sql_backend, "tot-5")
    filters = [
        EvaluationFilter(),
        EvaluationFilter(status=S.RUNNING),
        EvaluationFilter(language="rust"),
        EvaluationFilter(status=S.COMPLETED, language="python"),
        EvaluationFilter(created_after=BASE_TIME + timedelta(minutes=6)),
        EvaluationFilter(id_prefix="tot-1"),
        EvaluationFilter(status=S.FAILED),
    ]
    for criteria in filters:
        ids, _, _ = await _list(sql_backend, EvaluationQuery(filter=criteria, limit=100))
        _, _, total = await _list(sql_backend, EvaluationQuery(filter=criteria, limit=1))
        assert total == len(ids), criteria


async def test_list_active(sql_backend: PortStore) -> None:
    await _add(
        sql_backend,
        make_evaluation("q", status=EvaluationStatus.QUEUED),
        make_evaluation("prov", status=EvaluationStatus.PROVISIONING, executor_id="ex"),
        make_evaluation(
            "run",
            status=EvaluationStatus.RUNNING,
            container_id="c1",
            created_at=BASE_TIME + timedelta(seconds=1),
        ),
        make_evaluation("done", status=EvaluationStatus.COMPLETED),
        make_evaluation("run-deleted", status=EvaluationStatus.RUNNING),
    )
    await _delete(sql_backend, "run-deleted")
    async with sql_backend.session() as ports:
        active = await ports.queries.list_active()
    assert [e.id for e in active] == ["run", "prov"]
    assert active[0].container_id == "c1"
    assert active[1].executor_id == "ex"


async def test_blob_keys_cover_every_record_including_deleted(sql_backend: PortStore) -> None:
    def blob(key: str) -> StoredPayload:
        return StoredPayload(PayloadLocation.FILE, 200_000, "preview", compressed=True, key=key)

    await _add(
        sql_backend,
        make_evaluation("a", output=blob("evaluations/a/output.txt.zst")),
        make_evaluation("b", error=blob("evaluations/b/error.txt.zst")),
        make_evaluation("c", output=StoredPayload(PayloadLocation.INLINE, 5, "small")),
        make_evaluation("d", output=blob("evaluations/d/output.txt.zst")),
    )
    await _delete(sql_backend, "d")
    async with sql_backend.session() as ports:
        keys = await ports.queries.blob_keys()
    assert keys == {
        "evaluations/a/output.txt.zst",
        "evaluations/b/error.txt.zst",
        "evaluations/d/output.txt.zst",
    }


async def test_statistics_on_a_known_data_set(sql_backend: PortStore) -> None:
    inline = StoredPayload(PayloadLocation.INLINE, size=100, text="x")
    in_file = StoredPayload(PayloadLocation.FILE, size=200_000, text="y", key="k")
    runtimes = [10 * i for i in range(1, 21)]  # 10 .. 200
    records = [
        make_evaluation(
            f"s{i:02d}",
            status=EvaluationStatus.COMPLETED,
            runtime_ms=runtime,
            language="python" if i < 15 else "rust",
            output=inline,
        )
        for i, runtime in enumerate(runtimes)
    ]
    records.append(make_evaluation("f1", status=EvaluationStatus.FAILED, error=in_file))
    records.append(make_evaluation("f2", status=EvaluationStatus.FAILED, output=in_file))
    records.append(make_evaluation("q1", status=EvaluationStatus.QUEUED))
    records.append(make_evaluation("deleted", runtime_ms=99_999, output=in_file))
    await _add(sql_backend, *records)
    async with sql_backend.session() as ports:
        for n in range(3):
            await ports.events.append(
                EvaluationEvent(
                    evaluation_id=EvaluationId("s00"),
                    event_id=f"ev{n}",
                    event_type="status",
                    timestamp=BASE_TIME,
                )
            )
        await ports.events.append(
            EvaluationEvent(
                evaluation_id=EvaluationId("deleted"),
                event_id="x",
                event_type="status",
                timestamp=BASE_TIME,
            )
        )
        await ports.logs.append(EvaluationId("s01"), "héllo\n", BASE_TIME, last_update=BASE_TIME)
        await ports.logs.append(EvaluationId("s02"), "abc", BASE_TIME, last_update=BASE_TIME)
        await ports.logs.append(
            EvaluationId("deleted"), "never counted", BASE_TIME, last_update=BASE_TIME
        )
    await _delete(sql_backend, "deleted")

    async with sql_backend.session() as ports:
        stats = await ports.queries.statistics()
    assert stats.total == 23
    # Only statuses that occur are listed.
    assert stats.by_status == {"queued": 1, "completed": 20, "failed": 2}
    assert stats.by_language == {"python": 18, "rust": 5}
    assert stats.runtime.count == 20
    assert stats.runtime.average_ms == pytest.approx(105.0)
    # Nearest rank over 10..200: p50 -> 10th value, p95 -> 19th, p99 -> 20th.
    assert stats.runtime.p50_ms == 100
    assert stats.runtime.p95_ms == 190
    assert stats.runtime.p99_ms == 200
    assert stats.runtime.max_ms == 200
    assert stats.bytes_by_location == {"inline": 2_000, "file": 400_000}
    assert stats.events == 3
    assert stats.log_bytes == len("héllo\n".encode()) + 3


async def test_statistics_of_an_empty_store(sql_backend: PortStore) -> None:
    async with sql_backend.session() as ports:
        stats = await ports.queries.statistics()
    assert stats.total == 0
    assert stats.by_status == {}
    assert stats.by_language == {}
    assert stats.runtime.count == 0
    assert stats.runtime.average_ms is None
    assert stats.runtime.p50_ms is None
    assert stats.runtime.max_ms is None
    assert stats.bytes_by_location == {}
    assert stats.events == 0
    assert stats.log_bytes == 0


async def test_inspector_reports_real_counts(sql_backend: PortStore) -> None:
    await _add(sql_backend, *[make_evaluation(f"i{n}") for n in range(4)])
    await _delete(sql_backend, "i3")
    async with sql_backend.session() as ports:
        await ports.events.append(
            EvaluationEvent(
                evaluation_id=EvaluationId("i0"),
                event_id="e",
                event_type="created",
                timestamp=BASE_TIME,
            )
        )
        await ports.logs.append(EvaluationId("i0"), "one", BASE_TIME, last_update=BASE_TIME)
        await ports.logs.append(EvaluationId("i0"), "two", BASE_TIME, last_update=BASE_TIME)

    report = await sql_backend.inspector.inspect()
    assert report.name == "database"
    assert report.status == "healthy"
    expected_type = {
        "postgres": "postgresql",
        "postgres-sqlalchemy": "postgresql",
        "sqlite": "sqlite",
        "memory": "memory",
    }
    assert report.type == expected_type[sql_backend.kind]
    assert report.metrics["evaluations"] == 3
    assert report.metrics["deleted"] == 1
    assert report.metrics["events"] == 1
    assert report.metrics["log_chunks"] == 2
    assert report.details == {}
    if sql_backend.kind == "memory":
        return
    size: object = report.metrics["size_bytes"]  # object: mypy sees no int in a float MetricValue
    assert isinstance(size, int)
    assert size > 0

    detailed = await sql_backend.inspector.inspect(detailed=True)
    assert detailed.details["evaluations_rows"] == 4
    assert detailed.details["evaluation_events_rows"] == 1
    assert detailed.details["log_chunks_rows"] == 2
    assert isinstance(detailed.details["server_version"], str)
    assert "pool_size" in detailed.details
    if sql_backend.kind == "sqlite":
        # The engine's connect hook switched the file to WAL.
        assert detailed.details["journal_mode"] == "wal"


async def test_inspector_reports_an_unreachable_database(anyio_backend: str) -> None:
    engine = create_engine(
        DatabaseSettings(url="postgresql+asyncpg://postgres@127.0.0.1:1/none", connect_timeout_s=2)
    )
    try:
        report = await SqlDatabaseInspector(create_session_maker(engine), engine).inspect()
    finally:
        await engine.dispose()
    assert report.status == "unavailable"
    assert report.type == "postgresql"
    assert report.error


async def test_daily_status_counts_group_live_records_by_utc_day(sql_backend: PortStore) -> None:
    day = timedelta(days=1)
    late = BASE_TIME.replace(hour=23, minute=59)
    await _add(
        sql_backend,
        make_evaluation("old", created_at=BASE_TIME - 3 * day),
        make_evaluation("d1a", created_at=BASE_TIME - day, status=EvaluationStatus.COMPLETED),
        make_evaluation("d1b", created_at=BASE_TIME - day, status=EvaluationStatus.COMPLETED),
        make_evaluation("d1c", created_at=BASE_TIME - day, status=EvaluationStatus.FAILED),
        make_evaluation("d0a", created_at=late, status=EvaluationStatus.RUNNING),
        make_evaluation("d0b", created_at=late + timedelta(minutes=2)),
        make_evaluation("gone", created_at=BASE_TIME),
    )
    await _delete(sql_backend, "gone")
    async with sql_backend.session() as ports:
        rows = await ports.queries.daily_status_counts(BASE_TIME - 2 * day)
    first = (BASE_TIME - day).date()
    assert [(r.day, r.status, r.count) for r in rows] == [
        (first, "completed", 2),
        (first, "failed", 1),
        (BASE_TIME.date(), "running", 1),
        (BASE_TIME.date() + day, "queued", 1),
    ]


async def test_hourly_counts_group_live_records_by_utc_hour(sql_backend: PortStore) -> None:
    hour = timedelta(hours=1)
    await _add(
        sql_backend,
        make_evaluation("before", created_at=BASE_TIME - 3 * hour),
        make_evaluation("h1a", created_at=BASE_TIME - hour),
        make_evaluation("h1b", created_at=BASE_TIME - hour + timedelta(minutes=59, seconds=59)),
        make_evaluation("h0", created_at=BASE_TIME + timedelta(minutes=1)),
        make_evaluation("gone", created_at=BASE_TIME + timedelta(minutes=2)),
    )
    await _delete(sql_backend, "gone")
    async with sql_backend.session() as ports:
        rows = await ports.queries.hourly_counts(BASE_TIME - 2 * hour)
    top = BASE_TIME.replace(minute=0, second=0, microsecond=0)
    assert [(r.hour, r.count) for r in rows] == [(top - hour, 2), (top, 1)]
    assert all(r.hour.utcoffset() == timedelta(0) for r in rows)


async def test_statistics_follow_every_kind_of_change(sql_backend: PortStore) -> None:
    """Counters kept by the store (triggers on SQL) agree with the records after changes."""
    await _add(
        sql_backend,
        make_evaluation("a", status=EvaluationStatus.RUNNING),
        make_evaluation("b", language="rust"),
        make_evaluation("c", status=EvaluationStatus.COMPLETED, runtime_ms=30),
    )
    async with sql_backend.session() as ports:
        for name, event in (("a", "e1"), ("a", "e2"), ("a", "e2"), ("b", "e1")):
            await ports.events.append(
                EvaluationEvent(
                    evaluation_id=EvaluationId(name),
                    event_id=event,
                    event_type="t",
                    timestamp=BASE_TIME,
                )
            )
        await ports.logs.append(EvaluationId("a"), "12345", BASE_TIME, last_update=BASE_TIME)
        await ports.logs.append(EvaluationId("b"), "123", BASE_TIME, last_update=BASE_TIME)
        record = await ports.repository.get(EvaluationId("a"))
        assert record is not None
        version = record.version
        record.status = EvaluationStatus.COMPLETED
        record.runtime_ms = 10
        record.output = StoredPayload(PayloadLocation.FILE, size=5_000, text="p", key="k")
        record.touch(BASE_TIME)
        await ports.repository.update(record, version)
        await ports.uow.commit()
    await _delete(sql_backend, "b")

    async with sql_backend.session() as ports:
        stats = await ports.queries.statistics()

    assert stats.total == 2
    assert stats.by_status == {"completed": 2}
    assert stats.by_language == {"python": 2}
    assert (stats.runtime.count, stats.runtime.p50_ms, stats.runtime.max_ms) == (2, 10, 30)
    assert stats.runtime.average_ms == pytest.approx(20.0)
    assert stats.bytes_by_location == {"file": 5_000}
    assert (stats.events, stats.log_bytes) == (2, 5)
