import pytest

from application.errors import EvaluationNotFoundError, InvalidRequestError
from application.use_cases.update_evaluation import EvaluationChanges
from domain.errors import InvalidTextError
from domain.identifiers import parse_evaluation_id
from domain.status import EvaluationStatus
from tests.factories import AppendLogBodyFactory
from tests.use_cases.conftest import MAX_LOG_CHUNK_BYTES, UseCases

pytestmark = pytest.mark.anyio


async def test_appends_are_placed_end_to_end_in_bytes(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    first = await app.append_log.execute(seeded.id, "héllo\n")  # é is two bytes
    second = await app.append_log.execute(seeded.id, "world\n")

    assert (first.offset, first.end) == (0, 7)
    assert (second.offset, second.end) == (7, 13)
    assert second.created_at == app.clock.now()
    assert app.uow.committed
    whole = await app.read_log.execute(seeded.id)
    assert (whole.content, whole.offset, whole.next_offset) == ("héllo\nworld\n", 0, 13)


async def test_offset_returns_only_what_follows(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    bodies = AppendLogBodyFactory.batch(3)
    chunks = [await app.append_log.execute(seeded.id, body.content) for body in bodies]

    tail = await app.read_log.execute(seeded.id, chunks[1].offset)

    assert tail.content == bodies[1].content + bodies[2].content
    assert tail.offset == chunks[1].offset
    assert tail.next_offset == chunks[2].end


async def test_tailing_from_next_offset_sees_only_new_text(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.append_log.execute(seeded.id, "one\n")
    first = await app.read_log.execute(seeded.id)
    await app.append_log.execute(seeded.id, "two\n")

    second = await app.read_log.execute(seeded.id, first.next_offset)
    idle = await app.read_log.execute(seeded.id, second.next_offset)

    assert second.content == "two\n"
    assert (idle.content, idle.next_offset) == ("", second.next_offset)


async def test_empty_log_reads_empty(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)

    piece = await app.read_log.execute(seeded.id)

    assert (piece.content, piece.offset, piece.next_offset) == ("", 0, 0)


async def test_unknown_evaluation_is_not_found(app: UseCases) -> None:
    missing = parse_evaluation_id("missing")

    with pytest.raises(EvaluationNotFoundError):
        await app.append_log.execute(missing, "text")
    with pytest.raises(EvaluationNotFoundError):
        await app.read_log.execute(missing)
    assert app.database.log_chunks == {}


async def test_deleted_evaluation_is_not_found(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.delete.execute(seeded.id)

    with pytest.raises(EvaluationNotFoundError):
        await app.append_log.execute(seeded.id, "late\n")


async def test_chunk_too_large_is_refused(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    with pytest.raises(InvalidTextError) as caught:
        # One byte over the limit, though far fewer characters: the limit is in bytes.
        await app.append_log.execute(seeded.id, "é" * (MAX_LOG_CHUNK_BYTES // 2) + "a")

    assert caught.value.field == "content"
    assert str(MAX_LOG_CHUNK_BYTES) in caught.value.reason
    assert (await app.read_log.execute(seeded.id)).next_offset == 0


async def test_chunk_of_exactly_the_limit_is_accepted(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    chunk = await app.append_log.execute(seeded.id, "a" * MAX_LOG_CHUNK_BYTES)

    assert chunk.end == MAX_LOG_CHUNK_BYTES


async def test_nul_is_refused(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    with pytest.raises(InvalidTextError) as caught:
        await app.append_log.execute(seeded.id, "a\x00")

    assert caught.value.field == "content"


async def test_negative_offset_is_refused(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    with pytest.raises(InvalidRequestError) as caught:
        await app.read_log.execute(seeded.id, -1)

    assert caught.value.field == "offset"


async def test_a_running_evaluation_is_tailed_from_the_bounded_tail(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    lines = [f"line {index:03d}\n" for index in range(10)]  # 9 bytes each, 90 in all
    for line in lines:
        await app.append_log.execute(seeded.id, line)

    # The tail keeps the last 64 bytes (from byte 26): later offsets come from it...
    assert await app.tail.read(seeded.id, 27) == await app.read_log.execute(seeded.id, 27)
    latest = await app.read_log.execute(seeded.id, 81)
    assert (latest.content, latest.next_offset) == (lines[-1], 90)
    # ...earlier ones from the log store, whole.
    assert await app.tail.read(seeded.id, 0) is None
    assert (await app.read_log.execute(seeded.id, 0)).content == "".join(lines)


async def test_the_tail_is_dropped_when_the_evaluation_ends(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.append_log.execute(seeded.id, "working\n")
    assert await app.tail.read(seeded.id, 0) is not None

    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.COMPLETED))

    assert await app.tail.read(seeded.id, 0) is None
    assert (await app.read_log.execute(seeded.id)).content == "working\n"


async def test_a_queued_evaluation_keeps_no_tail(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    await app.append_log.execute(seeded.id, "waiting\n")

    assert await app.tail.read(seeded.id, 0) is None
    assert (await app.read_log.execute(seeded.id)).content == "waiting\n"
