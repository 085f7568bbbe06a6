from datetime import timedelta

import pytest

from application.errors import InvalidRequestError
from application.queries import EvaluationFilter, EvaluationQuery
from domain.evaluation import Evaluation
from domain.identifiers import parse_evaluation_id
from domain.status import EvaluationStatus
from tests.factories import BASE_TIME
from tests.use_cases.conftest import UseCases

pytestmark = pytest.mark.anyio


async def _seed_series(app: UseCases, count: int) -> list[Evaluation]:
    """``count`` records one minute apart, oldest first."""
    return [
        await app.seed(
            id=parse_evaluation_id(f"series-{i:02d}"),
            created_at=BASE_TIME + timedelta(minutes=i),
            status=EvaluationStatus.QUEUED,
            language="python",
        )
        for i in range(count)
    ]


async def test_newest_first(app: UseCases) -> None:
    series = await _seed_series(app, 4)

    page = await app.list.execute(EvaluationQuery())

    assert [e.id for e in page.items] == [e.id for e in reversed(series)]
    assert page.next_cursor is None
    assert page.total == len(series)


async def test_same_creation_time_is_ordered_by_id_descending(app: UseCases) -> None:
    for name in ("tie-a", "tie-c", "tie-b"):
        await app.seed(id=parse_evaluation_id(name), created_at=BASE_TIME)

    page = await app.list.execute(EvaluationQuery())

    assert [e.id for e in page.items] == ["tie-c", "tie-b", "tie-a"]


async def test_keyset_cursor_walks_every_record_once(app: UseCases) -> None:
    series = await _seed_series(app, 7)
    seen: list[str] = []
    query = EvaluationQuery(limit=3)

    pages = 0
    while True:
        page = await app.list.execute(query)
        pages += 1
        seen.extend(e.id for e in page.items)
        if page.next_cursor is None:
            break
        assert page.next_cursor.id == page.items[-1].id
        query = EvaluationQuery(limit=3, cursor=page.next_cursor)

    assert pages == 3
    assert seen == [e.id for e in reversed(series)]


async def test_cursor_is_stable_when_newer_records_arrive(app: UseCases) -> None:
    series = await _seed_series(app, 4)
    first = await app.list.execute(EvaluationQuery(limit=2))
    await app.seed(created_at=BASE_TIME + timedelta(hours=1))

    second = await app.list.execute(EvaluationQuery(limit=2, cursor=first.next_cursor))

    assert [e.id for e in second.items] == [series[1].id, series[0].id]


async def test_offset_and_total(app: UseCases) -> None:
    series = await _seed_series(app, 5)

    page = await app.list.execute(EvaluationQuery(limit=2, offset=2, include_total=True))

    assert [e.id for e in page.items] == [series[2].id, series[1].id]
    assert page.total == 5
    assert page.next_cursor is not None


async def test_filters_by_status_and_language(app: UseCases) -> None:
    wanted = await app.seed(status=EvaluationStatus.COMPLETED, language="rust")
    await app.seed(status=EvaluationStatus.COMPLETED, language="python")
    await app.seed(status=EvaluationStatus.QUEUED, language="rust")

    page = await app.list.execute(
        EvaluationQuery(
            filter=EvaluationFilter(status=EvaluationStatus.COMPLETED, language="rust"),
            include_total=True,
        )
    )

    assert [e.id for e in page.items] == [wanted.id]
    assert page.total == 1


async def test_created_window_includes_after_and_excludes_before(app: UseCases) -> None:
    series = await _seed_series(app, 5)

    page = await app.list.execute(
        EvaluationQuery(
            filter=EvaluationFilter(
                created_after=series[1].created_at, created_before=series[3].created_at
            )
        )
    )

    assert [e.id for e in page.items] == [series[2].id, series[1].id]


async def test_id_prefix(app: UseCases) -> None:
    await _seed_series(app, 3)
    other = await app.seed(id=parse_evaluation_id("other-1"))

    page = await app.list.execute(
        EvaluationQuery(filter=EvaluationFilter(id_prefix="other-"), include_total=True)
    )

    assert [e.id for e in page.items] == [other.id]
    assert page.total == 1


async def test_listed_items_are_copies(app: UseCases) -> None:
    seeded = await app.seed(metadata={"a": 1})

    page = await app.list.execute(EvaluationQuery())
    page.items[0].metadata["a"] = 2

    assert app.stored(seeded).metadata == {"a": 1}


async def test_an_offset_beyond_the_setting_is_refused_pointing_to_the_cursor(
    app: UseCases,
) -> None:
    await _seed_series(app, 2)
    deepest = app.limits.list_offset

    page = await app.list.execute(EvaluationQuery(limit=2, offset=deepest))
    assert page.items == []
    assert page.total == 2
    with pytest.raises(InvalidRequestError) as refused:
        await app.list.execute(EvaluationQuery(limit=2, offset=deepest + 1))

    assert refused.value.field == "offset"
    assert "MAX_LIST_OFFSET" in refused.value.message
    assert "next_cursor" in refused.value.message
