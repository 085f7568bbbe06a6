from datetime import timedelta

import pytest

from application.errors import BlobMissingError, EvaluationNotFoundError
from application.use_cases.events import NewEvent
from application.use_cases.update_evaluation import EvaluationChanges
from domain.identifiers import parse_evaluation_id
from domain.status import EvaluationStatus
from tests.factories import BASE_TIME
from tests.use_cases.conftest import THRESHOLDS, UseCases

pytestmark = pytest.mark.anyio

LARGE_OUTPUT = "".join(f"line {i}\n" for i in range(40))
LARGE_ERROR = "Traceback (most recent call last):\n" + "  frame\n" * 20


async def test_complete_has_full_payloads_logs_and_events(app: UseCases) -> None:
    assert len(LARGE_OUTPUT.encode()) > THRESHOLDS.large_file_threshold
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.append_log.execute(seeded.id, "booting\n")
    await app.append_log.execute(seeded.id, "running\n")
    await app.record_event.execute(
        seeded.id, NewEvent(event_type="finished", timestamp=BASE_TIME + timedelta(hours=2))
    )
    await app.record_event.execute(
        seeded.id, NewEvent(event_type="started", timestamp=BASE_TIME + timedelta(hours=1))
    )
    await app.update.execute(
        seeded.id,
        EvaluationChanges(status=EvaluationStatus.FAILED, output=LARGE_OUTPUT, error=LARGE_ERROR),
    )

    complete = await app.complete.execute(seeded.id)

    assert complete.evaluation.output is not None
    assert complete.evaluation.output.text == LARGE_OUTPUT[: THRESHOLDS.preview_size]
    assert complete.output == LARGE_OUTPUT
    assert complete.error == LARGE_ERROR
    assert complete.logs == "booting\nrunning\n"
    assert [e.event_type for e in complete.events] == ["started", "finished"]
    assert complete.evaluation.status is EvaluationStatus.FAILED


async def test_complete_with_inline_and_missing_payloads(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(seeded.id, EvaluationChanges(output="short"))

    complete = await app.complete.execute(seeded.id)

    assert complete.output == "short"
    assert complete.error is None
    assert complete.logs == ""
    assert complete.events == []


async def test_complete_of_unknown_or_deleted_is_not_found(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.delete.execute(seeded.id)

    with pytest.raises(EvaluationNotFoundError):
        await app.complete.execute(seeded.id)
    with pytest.raises(EvaluationNotFoundError):
        await app.complete.execute(parse_evaluation_id("missing"))


async def test_complete_reports_a_missing_blob(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    updated = await app.update.execute(seeded.id, EvaluationChanges(output=LARGE_OUTPUT))
    assert updated.output is not None and updated.output.key is not None
    await app.blobs.delete(updated.output.key)

    with pytest.raises(BlobMissingError) as caught:
        await app.complete.execute(seeded.id)

    assert caught.value.key == updated.output.key


async def test_read_payload_streams_the_full_blob(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(seeded.id, EvaluationChanges(output=LARGE_OUTPUT))

    content = await app.read_payload.execute(seeded.id, "output")

    assert content.payload is not None and content.payload.truncated
    assert content.chunks is not None
    data = b"".join([chunk async for chunk in content.chunks])
    assert data.decode() == LARGE_OUTPUT


async def test_read_payload_streams_inline_text(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(seeded.id, EvaluationChanges(error="boom"))

    content = await app.read_payload.execute(seeded.id, "error")

    assert content.payload is not None and not content.payload.truncated
    assert content.chunks is not None
    assert b"".join([chunk async for chunk in content.chunks]) == b"boom"


async def test_read_payload_of_absent_payload_is_empty(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    content = await app.read_payload.execute(seeded.id, "output")

    assert (content.payload, content.chunks) == (None, None)


async def test_read_payload_of_unknown_is_not_found(app: UseCases) -> None:
    with pytest.raises(EvaluationNotFoundError):
        await app.read_payload.execute(parse_evaluation_id("missing"), "output")
