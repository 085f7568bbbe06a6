from datetime import UTC, datetime, timedelta

import pytest

from application.commands import EvaluationChanges
from application.errors import EvaluationNotFoundError, InvalidRequestError
from application.use_cases.logs import LogSource
from domain.errors import InvalidTextError
from domain.identifiers import parse_evaluation_id
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
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
    assert await app.tail.read(DEFAULT_TENANT, seeded.id, 27) == await app.read_log.execute(
        seeded.id, 27
    )
    latest = await app.read_log.execute(seeded.id, 81)
    assert (latest.content, latest.next_offset) == (lines[-1], 90)
    # ...earlier ones from the log store, whole.
    assert await app.tail.read(DEFAULT_TENANT, seeded.id, 0) is None
    assert (await app.read_log.execute(seeded.id, 0)).content == "".join(lines)


async def test_the_tail_is_dropped_when_the_evaluation_ends(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.append_log.execute(seeded.id, "working\n")
    assert await app.tail.read(DEFAULT_TENANT, seeded.id, 0) is not None

    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.COMPLETED))

    assert await app.tail.read(DEFAULT_TENANT, seeded.id, 0) is None
    assert (await app.read_log.execute(seeded.id)).content == "working\n"


async def test_a_queued_evaluation_keeps_no_tail(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.QUEUED)
    await app.append_log.execute(seeded.id, "waiting\n")

    assert await app.tail.read(DEFAULT_TENANT, seeded.id, 0) is None
    assert (await app.read_log.execute(seeded.id)).content == "waiting\n"


async def test_an_append_stamps_last_update_and_moves_the_version_on(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    reported = app.clock.now() - timedelta(seconds=3)

    await app.append_log.execute(seeded.id, "one\n", reported)
    first = app.stored(seeded)
    assert (first.last_update, first.version) == (reported, seeded.version + 1)
    app.clock.advance(seconds=1)
    await app.append_log.execute(seeded.id, "two\n")  # no time of its own: the append's
    second = app.stored(seeded)

    assert (second.last_update, second.version) == (app.clock.now(), seeded.version + 2)
    assert second.updated_at == seeded.updated_at


async def test_a_naive_last_update_is_taken_as_utc(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    await app.append_log.execute(seeded.id, "x", datetime(2024, 7, 1, 12, 0))  # utcnow() style

    assert app.stored(seeded).last_update == datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


async def test_the_cached_record_follows_an_append(app: UseCases) -> None:
    """The record changed: a reader never gets the last_update from before the append."""
    seeded = await app.seed(status=EvaluationStatus.RUNNING, last_update=None)
    assert (await app.get.execute(seeded.id)).last_update is None  # now cached
    app.clock.advance(seconds=2)

    await app.append_log.execute(seeded.id, "line\n")

    cached = await app.record_cache.get(DEFAULT_TENANT, seeded.id)
    assert cached is not None  # published, so tailing still touches no database record
    assert cached == app.stored(seeded)
    assert (await app.get.execute(seeded.id)).last_update == app.clock.now()


async def test_the_logs_view_of_a_running_evaluation(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING, output=None, error=None)
    await app.append_log.execute(seeded.id, "step 1\n")

    view = await app.evaluation_logs.execute(seeded.id)

    assert view.source is LogSource.TAIL
    assert (view.text, view.log.content, view.log.next_offset) == ("step 1\n", "step 1\n", 7)
    assert view.evaluation == app.stored(seeded)


async def test_the_logs_view_of_a_finished_evaluation_is_the_stores(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.append_log.execute(seeded.id, "done\n")
    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.COMPLETED))
    app.worker_logs.batches[seeded.id] = "the worker's batch"

    view = await app.evaluation_logs.execute(seeded.id, 2)

    assert view.source is LogSource.STORE
    assert (view.text, view.log.offset) == ("ne\n", 2)
    assert view.evaluation.status is EvaluationStatus.COMPLETED


async def test_a_live_evaluation_with_an_empty_log_shows_the_workers_batch(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    app.worker_logs.batches[seeded.id] = "line 1\nline 2"

    view = await app.evaluation_logs.execute(seeded.id)

    assert view.source is LogSource.WORKER
    assert view.text == "line 1\nline 2"
    # Not part of the log: tailing by offset is not disturbed.
    assert (view.log.content, view.log.offset, view.log.next_offset) == ("", 0, 0)


async def test_the_workers_batch_is_not_shown_once_the_log_has_text_or_the_run_ended(
    app: UseCases,
) -> None:
    queued = await app.seed(status=EvaluationStatus.QUEUED)
    logged = await app.seed(status=EvaluationStatus.RUNNING)
    await app.append_log.execute(logged.id, "ours\n")
    await app.tail.drop(DEFAULT_TENANT, logged.id)  # the tail lost it: the store answers
    for seeded in (queued, logged):
        app.worker_logs.batches[seeded.id] = "theirs"

    assert (await app.evaluation_logs.execute(queued.id)).source is LogSource.STORE
    view = await app.evaluation_logs.execute(logged.id)
    assert (view.source, view.text) == (LogSource.STORE, "ours\n")


async def test_the_logs_view_of_an_unknown_evaluation_is_not_found(app: UseCases) -> None:
    with pytest.raises(EvaluationNotFoundError):
        await app.evaluation_logs.execute(parse_evaluation_id("missing"))
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    with pytest.raises(InvalidRequestError):
        await app.evaluation_logs.execute(seeded.id, -1)
