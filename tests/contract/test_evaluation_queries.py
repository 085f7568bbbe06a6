"""EvaluationQueries contract: filters, order and paging agree everywhere.

Statistics, counts and the database inspector: test_evaluation_statistics.py.
"""

from datetime import timedelta

import pytest

from application.queries import EvaluationFilter, EvaluationQuery, ListCursor, RecordTally
from domain.identifiers import EvaluationId
from domain.payload import PayloadLocation, StoredPayload
from domain.status import EvaluationStatus
from tests.contract.conftest import BASE_TIME, PortStore, make_evaluation
from tests.contract.query_records import add, append_timeline, delete, list_ids

pytestmark = pytest.mark.anyio


async def test_newest_first_with_ties_broken_by_id(sql_backend: PortStore) -> None:
    await add(
        sql_backend,
        make_evaluation("a", created_at=BASE_TIME),
        make_evaluation("b", created_at=BASE_TIME + timedelta(minutes=1)),
        make_evaluation("c", created_at=BASE_TIME),
        make_evaluation("d", created_at=BASE_TIME - timedelta(days=1)),
    )
    ids, cursor, total = await list_ids(sql_backend, EvaluationQuery())
    assert ids == ["b", "c", "a", "d"]
    assert cursor is None
    assert total == 4


async def test_each_filter(sql_backend: PortStore) -> None:
    await add(
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
    await delete(sql_backend, "gone")

    async def ids(**criteria: object) -> list[str]:
        found, _, _ = await list_ids(
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
    await add(
        sql_backend,
        make_evaluation("a_b-1"),
        make_evaluation("axb-2"),
        make_evaluation("a.b-3"),
    )

    async def ids(prefix: str) -> list[str]:
        found, _, _ = await list_ids(
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
    await add(sql_backend, *records)
    expected, _, _ = await list_ids(sql_backend, EvaluationQuery(limit=100))
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
            page = await ports.pages.list(query)
        assert page.total == 23
        seen.extend(e.id for e in page.items)
        offset += len(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert len(set(seen)) == 23


async def test_cursor_paging_applies_filters(sql_backend: PortStore) -> None:
    await add(
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
    ids, cursor, _ = await list_ids(sql_backend, query)
    assert ids == ["r7", "r5"]
    assert isinstance(cursor, ListCursor)
    ids, cursor, _ = await list_ids(
        sql_backend,
        EvaluationQuery(filter=EvaluationFilter(language="python"), limit=2, cursor=cursor),
    )
    assert ids == ["r3", "r1"]
    # r1 is the last python record; an exact fit may still offer a cursor, which leads nowhere.
    if cursor is not None:
        assert isinstance(cursor, ListCursor)
        more, _, _ = await list_ids(
            sql_backend,
            EvaluationQuery(filter=EvaluationFilter(language="python"), limit=2, cursor=cursor),
        )
        assert more == []


async def test_total_counts_matches_not_the_page(sql_backend: PortStore) -> None:
    await add(sql_backend, *[make_evaluation(f"t{i}") for i in range(5)])
    ids, cursor, total = await list_ids(sql_backend, EvaluationQuery(limit=2, include_total=True))
    assert len(ids) == 2
    assert total == 5
    assert cursor is not None
    _, _, total = await list_ids(sql_backend, EvaluationQuery(limit=2, offset=4))
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
    await add(sql_backend, *records)
    await delete(sql_backend, "tot-4")
    await delete(sql_backend, "tot-5")
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
        ids, _, _ = await list_ids(sql_backend, EvaluationQuery(filter=criteria, limit=100))
        _, _, total = await list_ids(sql_backend, EvaluationQuery(filter=criteria, limit=1))
        assert total == len(ids), criteria


async def test_list_active(sql_backend: PortStore) -> None:
    await add(
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
    await delete(sql_backend, "run-deleted")
    async with sql_backend.session() as ports:
        active = await ports.queries.list_active()
    assert [e.id for e in active] == ["run", "prov"]
    assert active[0].container_id == "c1"
    assert active[1].executor_id == "ex"


async def test_blob_keys_cover_every_record_including_deleted(sql_backend: PortStore) -> None:
    def blob(key: str) -> StoredPayload:
        return StoredPayload(PayloadLocation.FILE, 200_000, "preview", compressed=True, key=key)

    await add(
        sql_backend,
        make_evaluation("a", output=blob("evaluations/a/output.txt.zst")),
        make_evaluation("b", error=blob("evaluations/b/error.txt.zst")),
        make_evaluation("c", output=StoredPayload(PayloadLocation.INLINE, 5, "small")),
        make_evaluation("d", output=blob("evaluations/d/output.txt.zst")),
    )
    await delete(sql_backend, "d")
    async with sql_backend.session() as ports:
        keys = await ports.queries.blob_keys()
    assert keys == {
        "evaluations/a/output.txt.zst",
        "evaluations/b/error.txt.zst",
        "evaluations/d/output.txt.zst",
    }


async def test_tallies_name_every_record_including_deleted(sql_backend: PortStore) -> None:
    """What the file backend's copies are checked against, one entry per record."""
    async with sql_backend.session() as ports:
        assert await ports.queries.tallies() == {}
    await add(sql_backend, make_evaluation("a", version=3), make_evaluation("b"))
    await append_timeline(sql_backend, "a", events=["one", "two"], logs=["héllo\n"])
    await delete(sql_backend, "b")
    async with sql_backend.session() as ports:
        tallies = await ports.queries.tallies()
    assert tallies["a"].events == 2 and tallies["a"].log_bytes == len("héllo\n".encode())
    assert tallies["b"] == RecordTally(version=2)
    assert tallies["a"].version > 3  # the log append moved the record on


async def test_an_empty_page_still_has_its_total(sql_backend: PortStore) -> None:
    """The total rides with the page's rows on PostgreSQL: a page without rows keeps it."""
    await add(
        sql_backend,
        *[
            make_evaluation(f"e{i}", status=EvaluationStatus.QUEUED, language="python")
            for i in range(3)
        ],
    )
    queued = EvaluationFilter(status=EvaluationStatus.QUEUED, language="python")
    cases = [
        (EvaluationQuery(offset=3), 3),
        (EvaluationQuery(filter=queued, offset=10), 3),
        (EvaluationQuery(filter=EvaluationFilter(id_prefix="e"), offset=5), 3),
        (EvaluationQuery(filter=EvaluationFilter(status=EvaluationStatus.FAILED)), 0),
        (EvaluationQuery(filter=EvaluationFilter(language="cobol")), 0),
        (EvaluationQuery(filter=EvaluationFilter(id_prefix="zz")), 0),
        (EvaluationQuery(cursor=ListCursor(created_at=BASE_TIME, id=EvaluationId("e0"))), 3),
    ]
    for query, total in cases:
        ids, cursor, counted = await list_ids(sql_backend, query)
        assert (ids, cursor, counted) == ([], None, total), query
        async with sql_backend.session() as ports:
            fields = await ports.pages.list_fields(query, frozenset({"completed_at", "id"}))
        assert (fields.items, fields.total) == ([], total), query


async def test_a_page_of_fields_whose_first_column_is_null_is_not_empty(
    sql_backend: PortStore,
) -> None:
    await add(sql_backend, make_evaluation("open", completed_at=None))
    async with sql_backend.session() as ports:
        page = await ports.pages.list_fields(
            EvaluationQuery(), frozenset({"completed_at", "id", "version"})
        )
    assert [item["id"] for item in page.items] == ["open"]
    assert page.items[0]["completed_at"] is None
    assert page.total == 1


async def test_id_prefix_is_a_byte_range_with_the_same_answer_everywhere(
    sql_backend: PortStore,
) -> None:
    """Case, characters beside the range's bounds, prefixes beyond what ids hold: the
    index range and the exact test agree with ``str.startswith`` on every backend."""
    names = [
        "ab",
        "abc",
        "abd",
        "ab-",
        "ab.",
        "ab:",
        "ab_",
        "abZ",
        "abz",
        "aB",
        "Ab",
        "ac",
        "b",
        "a",
    ]
    await add(sql_backend, *[make_evaluation(name) for name in names])

    async def ids(prefix: str) -> list[str]:
        found, _, total = await list_ids(
            sql_backend, EvaluationQuery(filter=EvaluationFilter(id_prefix=prefix))
        )
        assert total == len(found)
        return sorted(found)

    prefixes = ("a", "ab", "aB", "abc", "ab:", "ab_", "abz", "ab~", "ab\u00e9", "b", "c", "A")
    for prefix in prefixes:
        assert await ids(prefix) == sorted(n for n in names if n.startswith(prefix)), prefix
