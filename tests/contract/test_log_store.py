"""LogStore contract: contiguous offsets under concurrency, byte-offset reads, the record's
``last_update`` and version moved by each append."""

from datetime import timedelta

import anyio
import pytest

from application.errors import EvaluationNotFoundError, InvalidRequestError
from domain.errors import InvalidTextError
from domain.identifiers import EvaluationId
from domain.timeline import LogChunk, LogSlice
from tests.contract.conftest import BASE_TIME, PortStore, make_evaluation

pytestmark = pytest.mark.anyio

EVAL = EvaluationId("eval-logs")


@pytest.fixture
async def store(sql_backend: PortStore) -> PortStore:
    async with sql_backend.session() as ports:
        await ports.repository.add(make_evaluation(EVAL))
    return sql_backend


async def _append(store: PortStore, content: str) -> LogChunk:
    async with store.session() as ports:
        return (await ports.logs.append(EVAL, content, BASE_TIME, last_update=BASE_TIME)).chunk


async def _read(store: PortStore, offset: int = 0) -> LogSlice:
    async with store.session() as ports:
        return await ports.logs.read(EVAL, offset)


async def test_appends_are_placed_end_to_end(store: PortStore) -> None:
    first = await _append(store, "line 1\n")
    second = await _append(store, "héllo ✓\n")
    third = await _append(store, "end")
    assert (first.offset, second.offset, third.offset) == (0, 7, 7 + len("héllo ✓\n".encode()))
    assert first.evaluation_id == EVAL
    assert second.created_at == BASE_TIME
    whole = await _read(store)
    assert whole == LogSlice(content="line 1\nhéllo ✓\nend", offset=0, next_offset=third.end)


async def test_read_from_offsets(store: PortStore) -> None:
    await _append(store, "abc")
    await _append(store, "déf")  # é is two bytes: d=3, é=4..5, f=6
    await _append(store, "ghi")
    size = 3 + 4 + 3
    assert await _read(store, 0) == LogSlice("abcdéfghi", 0, size)
    assert await _read(store, 2) == LogSlice("cdéfghi", 2, size)
    assert await _read(store, 3) == LogSlice("défghi", 3, size)
    assert await _read(store, 4) == LogSlice("éfghi", 4, size)
    assert await _read(store, 6) == LogSlice("fghi", 6, size)
    assert await _read(store, 7) == LogSlice("ghi", 7, size)
    assert await _read(store, 9) == LogSlice("i", 9, size)
    assert await _read(store, size) == LogSlice("", size, size)
    assert await _read(store, size + 100) == LogSlice("", size, size)


async def test_offset_inside_a_character_is_refused(store: PortStore) -> None:
    await _append(store, "a🚀b")  # 🚀 occupies bytes 1..4
    for offset in (2, 3, 4):
        with pytest.raises(InvalidTextError) as info:
            await _read(store, offset)
        assert info.value.field == "offset"
    assert (await _read(store, 5)).content == "b"
    with pytest.raises(InvalidRequestError):
        await _read(store, -1)


async def test_empty_append_changes_nothing(store: PortStore) -> None:
    await _append(store, "abc")
    empty = await _append(store, "")
    assert empty.offset == 3
    await _append(store, "d")
    assert await _read(store) == LogSlice("abcd", 0, 4)


async def test_empty_and_unknown_logs(store: PortStore) -> None:
    assert await _read(store) == LogSlice("", 0, 0)
    async with store.session() as ports:
        assert await ports.logs.read(EvaluationId("nobody")) == LogSlice("", 0, 0)
        with pytest.raises(EvaluationNotFoundError):
            await ports.logs.append(EvaluationId("nobody"), "x", BASE_TIME, last_update=BASE_TIME)


async def test_concurrent_appends_are_never_lost(store: PortStore) -> None:
    chunks: list[LogChunk] = []
    lines = [f"line {n:02d} ✓\n" for n in range(20)]

    async def append(line: str) -> None:
        chunks.append(await _append(store, line))

    async with anyio.create_task_group() as group:
        for line in lines:
            group.start_soon(append, line)

    placed = sorted(chunks, key=lambda chunk: chunk.offset)
    assert sorted(c.content for c in placed) == sorted(lines)
    position = 0
    for chunk in placed:
        assert chunk.offset == position
        position = chunk.end
    log = await _read(store)
    assert log.content == "".join(c.content for c in placed)
    assert log.next_offset == position
    async with store.session() as ports:
        stats = await ports.queries.statistics()
    assert stats.log_bytes == position


async def test_an_append_sets_last_update_and_moves_the_version_on(store: PortStore) -> None:
    """In the statement that places the chunk: the record changed, so its version grows."""
    later, reported = BASE_TIME + timedelta(minutes=5), BASE_TIME + timedelta(minutes=4)
    async with store.session() as ports:
        before = await ports.repository.get(EVAL)
        first = await ports.logs.append(EVAL, "one\n", later, last_update=reported)
    async with store.session() as ports:
        after = await ports.repository.get(EVAL)
        second = await ports.logs.append(
            EVAL, "", later + timedelta(seconds=1), last_update=later + timedelta(seconds=1)
        )
    async with store.session() as ports:
        last = await ports.repository.get(EVAL)

    assert before is not None and after is not None and last is not None
    assert before.last_update is None
    assert (first.version, after.version) == (before.version + 1, before.version + 1)
    assert after.last_update == reported  # the writer's own time, as given
    assert after.updated_at == before.updated_at  # a log line is not a record write
    # Even when empty, an append stamps the ``last_update`` it is given.
    assert (second.version, last.version) == (after.version + 1, after.version + 1)
    assert last.last_update == later + timedelta(seconds=1)
    assert second.chunk.offset == first.chunk.end
