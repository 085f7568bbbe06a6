"""Search contract: every store finds the same evaluations for the same text or pattern,
in the same fields, with the list's filters and paging, and hands back the texts where
the matches are (PostgreSQL: trigram indexes; SQLite: FTS5; memory: RE2 over every text).
"""

from datetime import timedelta

import msgspec
import pytest

from application.queries import EvaluationFilter, EvaluationQuery
from application.search import SearchField, TextSearch, matches_in
from domain.identifiers import EvaluationId
from domain.payload import PayloadLocation, StoredPayload
from domain.status import EvaluationStatus
from domain.timeline import EvaluationEvent
from tests.contract.conftest import BASE_TIME, PortStore, make_evaluation
from tests.contract.query_records import add, delete

pytestmark = pytest.mark.anyio
OOM = "out of memory"


def _inline(text: str) -> StoredPayload:
    return StoredPayload(PayloadLocation.INLINE, len(text.encode()), text)


async def _seed(store: PortStore) -> None:
    """One hit per field for ``OOM``, in different cases, and records that must not match."""
    at = [BASE_TIME + timedelta(minutes=n) for n in range(8)]
    await add(
        store,
        make_evaluation("s-code", created_at=at[0], code="raise MemoryError('Out Of Memory')"),
        make_evaluation(
            "s-output",
            created_at=at[1],
            status=EvaluationStatus.FAILED,
            output=_inline("step 9\nCUDA OUT OF MEMORY. Tried to allocate 2 GiB"),
        ),
        make_evaluation(
            "s-error",
            created_at=at[2],
            status=EvaluationStatus.FAILED,
            error=_inline("Traceback (most recent call last):\nValueError: boom"),
        ),
        make_evaluation("s-log", created_at=at[3]),
        make_evaluation("s-event", created_at=at[4]),
        make_evaluation("s-none", created_at=at[5], code="print('out of mem')"),
        make_evaluation("s-gone", created_at=at[6], code=f"# {OOM}"),
        make_evaluation("s-literal", created_at=at[7], code="progress 100%_done; 100xxdone"),
    )
    async with store.session() as ports:
        for text in ("ünïcode first\n", f"then: {OOM.upper()} here\n"):
            await ports.logs.append(EvaluationId("s-log"), text, BASE_TIME, last_update=BASE_TIME)
        await ports.events.append(
            EvaluationEvent(
                evaluation_id=EvaluationId("s-event"),
                event_id="oom-1",
                event_type="oom",
                timestamp=BASE_TIME,
                message=f"worker saw {OOM}",
            )
        )
    await delete(store, "s-gone")


async def _found(store: PortStore, search: TextSearch, **filters: object) -> list[str]:
    """The ids both list paths give (newest first), checked to agree, with their total."""
    query = EvaluationQuery(filter=EvaluationFilter(search=search, **filters), limit=50)  # type: ignore[arg-type]
    async with store.session() as ports:
        page = await ports.pages.list(query)
        queried = await ports.queries.list(query)
    ids: list[str] = [item.id for item in page.items]
    assert [item.id for item in queried.items] == ids
    assert page.total == queried.total == len(ids)
    return ids


async def test_a_text_is_found_in_every_field_whatever_its_case(sql_backend: PortStore) -> None:
    await _seed(sql_backend)

    found = await _found(sql_backend, TextSearch(OOM))

    assert found == ["s-event", "s-log", "s-output", "s-code"]  # newest first; not deleted


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({SearchField.EVENTS}, ["s-event"]),
        ({SearchField.LOGS}, ["s-log"]),
        ({SearchField.OUTPUT, SearchField.ERROR}, ["s-output"]),
        ({SearchField.CODE}, ["s-code"]),
    ],
    ids=["events", "logs", "output-error", "code"],
)
async def test_in_limits_where_a_search_looks(
    sql_backend: PortStore, fields: set[SearchField], expected: list[str]
) -> None:
    await _seed(sql_backend)

    assert await _found(sql_backend, TextSearch(OOM, fields=frozenset(fields))) == expected


async def test_a_pattern_is_case_sensitive_and_joins_the_other_filters(
    sql_backend: PortStore,
) -> None:
    await _seed(sql_backend)

    exact = await _found(sql_backend, TextSearch(r"Value\w+: b.om", regex=True))
    lower = await _found(sql_backend, TextSearch(r"valueerror", regex=True))
    failed = await _found(
        sql_backend, TextSearch(r"(?i)(boom|memory)", regex=True), status=EvaluationStatus.FAILED
    )

    assert exact == ["s-error"]
    assert lower == []
    assert failed == ["s-error", "s-output"]


async def test_like_wildcards_in_a_text_are_characters(sql_backend: PortStore) -> None:
    await _seed(sql_backend)

    assert await _found(sql_backend, TextSearch("100%_done")) == ["s-literal"]
    assert await _found(sql_backend, TextSearch("0%_d")) == ["s-literal"]
    assert await _found(sql_backend, TextSearch("100_x")) == []


async def test_a_cursor_pages_through_the_hits_once(sql_backend: PortStore) -> None:
    await _seed(sql_backend)
    search = TextSearch(OOM)
    seen: list[str] = []
    query = EvaluationQuery(filter=EvaluationFilter(search=search), limit=3)
    async with sql_backend.session() as ports:
        page = await ports.pages.list(query)
        assert page.total == 4
        seen += [item.id for item in page.items]
        assert page.next_cursor is not None
        page = await ports.pages.list(msgspec.structs.replace(query, cursor=page.next_cursor))
        seen += [item.id for item in page.items]

    assert seen == ["s-event", "s-log", "s-output", "s-code"]
    assert page.next_cursor is None


async def test_a_changed_text_is_found_by_what_it_holds_now(sql_backend: PortStore) -> None:
    await _seed(sql_backend)
    async with sql_backend.session() as ports:
        record = await ports.repository.get(EvaluationId("s-output"))
        assert record is not None
        version = record.version
        record.output = _inline("all good now")
        record.touch(BASE_TIME + timedelta(hours=1))
        await ports.repository.update(record, version)

    assert await _found(sql_backend, TextSearch(OOM, fields=frozenset({SearchField.OUTPUT}))) == []
    assert await _found(sql_backend, TextSearch("all good")) == ["s-output"]


async def test_the_texts_of_the_hits_say_where_each_matched(sql_backend: PortStore) -> None:
    await _seed(sql_backend)
    search = TextSearch(OOM)
    ids = [EvaluationId(name) for name in ("s-code", "s-output", "s-log", "s-event")]

    async with sql_backend.session() as ports:
        found = matches_in(search, await ports.search.texts(ids, search))

    places = {
        evaluation_id: [(m.field.value, m.offset, m.event_id) for m in matches]
        for evaluation_id, matches in found.items()
    }
    first_piece = len("ünïcode first\n".encode())
    assert places == {
        "s-code": [("code", len("raise MemoryError('"), None)],
        "s-output": [("output", len("step 9\nCUDA "), None)],
        "s-log": [("logs", first_piece + len("then: "), None)],  # bytes into the log
        "s-event": [("events", len("worker saw "), "oom-1")],
    }
    log = found["s-log"][0]
    start, end = log.highlight
    assert log.excerpt[start:end] == OOM.upper()
