from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import zstandard

from application.commands import EvaluationChanges, NewEvent
from application.errors import BlobMissingError, EvaluationNotFoundError
from domain.errors import InvalidTextError, UnsatisfiableRangeError
from domain.identifiers import parse_evaluation_id
from domain.payload import RequestedRange
from domain.status import EvaluationStatus
from interfaces.http.ranges import parse_range
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


async def test_complete_says_where_each_artifact_is_and_tells_the_timeline(
    app: UseCases,
) -> None:
    created = BASE_TIME - timedelta(hours=1)
    seeded = await app.seed(
        status=EvaluationStatus.QUEUED, created_at=created, started_at=None, completed_at=None
    )
    await app.update.execute(seeded.id, EvaluationChanges(status=EvaluationStatus.RUNNING))
    await app.record_event.execute(
        seeded.id,
        NewEvent(event_type="note", message="half way", timestamp=BASE_TIME + timedelta(1)),
    )
    await app.record_event.execute(
        seeded.id, NewEvent(event_type="early", timestamp=created + timedelta(minutes=1))
    )
    app.clock.advance(days=2)
    await app.update.execute(
        seeded.id,
        EvaluationChanges(status=EvaluationStatus.FAILED, output=LARGE_OUTPUT, error="boom"),
    )

    complete = await app.complete.execute(seeded.id)

    output = complete.evaluation.output
    assert output is not None and output.key is not None
    assert complete.storage_locations == {
        "metadata": "memory",
        "events": "memory",
        "logs": "memory",
        "output": f"memory://{output.key}",
        "error": "memory",
    }
    assert [(t.timestamp, t.event, t.details) for t in complete.timeline] == [
        (created, "created", "Evaluation created"),
        (created + timedelta(minutes=1), "early", ""),
        (BASE_TIME, "started", "Started"),
        (BASE_TIME + timedelta(1), "note", "half way"),
        (BASE_TIME + timedelta(2), "failed", "Status: failed"),
    ]


async def test_complete_with_inline_and_missing_payloads(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(seeded.id, EvaluationChanges(output="short"))

    complete = await app.complete.execute(seeded.id)

    assert complete.output == "short"
    assert complete.error is None
    assert complete.logs == ""
    assert complete.events == []
    assert complete.storage_locations == {
        "metadata": "memory",
        "events": "memory",
        "logs": "memory",
        "output": "memory",
    }


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


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _read(app: UseCases, evaluation_id: Any, **options: Any) -> tuple[bytes, Any]:
    content = await app.read_payload.execute(evaluation_id, "output", **options)
    assert content.chunks is not None
    return b"".join([chunk async for chunk in content.chunks]), content


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 1000])
@pytest.mark.parametrize("chunk", [1, 5, 4096])
async def test_uploads_route_by_size_and_read_back_exactly(
    app: UseCases, size: int, chunk: int
) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    data = ("✓🚀ab" * 400).encode()[:size]  # cut on a character boundary below
    while True:
        try:
            data.decode()
            break
        except UnicodeDecodeError:
            data = data[:-1]

    stored = await app.upload(seeded.id, "output", _chunks(data, chunk))

    assert stored.output is not None
    assert stored.output.size == len(data)
    inline = len(data) <= THRESHOLDS.large_file_threshold
    assert (stored.output.key is None) is inline
    assert stored.output.text == data.decode()[: None if inline else THRESHOLDS.preview_size]
    assert app.stored(seeded).output == stored.output
    body, content = await _read(app, seeded.id)
    assert body == data
    assert content.length == len(data)


@pytest.mark.parametrize("bad", [b"ok\x00", b"ok\xff", b"ok\xe2\x9c"], ids=["nul", "byte", "cut"])
async def test_a_refused_upload_changes_nothing(app: UseCases, bad: bytes) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(seeded.id, EvaluationChanges(output=LARGE_OUTPUT))
    before = app.stored(seeded)

    for prefix in (b"", LARGE_OUTPUT.encode() * 3):
        with pytest.raises(InvalidTextError) as refused:
            await app.upload(seeded.id, "output", _chunks(prefix + bad, 50))
        assert refused.value.field == "output"

    assert app.stored(seeded) == before
    assert (await _read(app, seeded.id))[0] == LARGE_OUTPUT.encode()


async def test_upload_to_an_unknown_evaluation_reads_nothing(app: UseCases) -> None:
    read = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        read = True
        yield b"x"

    with pytest.raises(EvaluationNotFoundError):
        await app.upload(parse_evaluation_id("ghost"), "output", body())
    assert not read


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-4", (0, 5)),
        ("bytes=10-", (10, None)),
        ("bytes=-7", (-7, None)),
        ("bytes=5-5", (5, 6)),
        ("bytes=0-99999", (0, None)),
    ],
)
@pytest.mark.parametrize("text", ["short ✓ text", LARGE_OUTPUT], ids=["inline", "file"])
async def test_ranges_are_exact(
    app: UseCases, header: str, expected: tuple[int, int | None], text: str
) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(seeded.id, EvaluationChanges(output=text))
    data = text.encode()

    body, content = await _read(app, seeded.id, byte_range=parse_range(header))

    start, end = expected
    assert body == data[start:end]
    assert content.byte_range is not None and content.length == len(body)


async def test_an_unsatisfiable_range_names_the_size(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(seeded.id, EvaluationChanges(output="12345"))
    with pytest.raises(UnsatisfiableRangeError) as refused:
        await app.read_payload.execute(seeded.id, "output", byte_range=RequestedRange(start=5))
    assert refused.value.size == 5


async def test_a_range_of_another_version_is_dropped(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    updated = await app.update.execute(seeded.id, EvaluationChanges(output="12345"))
    asked = RequestedRange(start=1, end=3)

    kept, content = await _read(app, seeded.id, byte_range=asked, if_version=updated.version)
    assert (kept, content.byte_range is not None) == (b"23", True)
    whole, content = await _read(app, seeded.id, byte_range=asked, if_version=updated.version - 1)
    assert (whole, content.byte_range) == (b"12345", None)


async def test_a_blob_replaced_while_opening_it_is_read_again(
    app: UseCases, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    stale = await app.update.execute(seeded.id, EvaluationChanges(output=LARGE_OUTPUT))
    await app.update.execute(seeded.id, EvaluationChanges(output=LARGE_OUTPUT[::-1]))
    read = app.repository.get
    answers = [stale]

    async def stale_first(evaluation_id: Any) -> Any:
        return answers.pop() if answers else await read(evaluation_id)

    monkeypatch.setattr(app.repository, "get", stale_first)
    body, _ = await _read(app, seeded.id)
    assert body == LARGE_OUTPUT[::-1].encode()


async def test_a_blob_that_stays_missing_is_reported(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    updated = await app.update.execute(seeded.id, EvaluationChanges(output=LARGE_OUTPUT))
    assert updated.output is not None and updated.output.key is not None
    await app.blobs.delete(updated.output.key)

    with pytest.raises(BlobMissingError):
        await app.read_payload.execute(seeded.id, "output")


async def test_zstd_is_passed_through_only_whole_and_compressed(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.update.execute(seeded.id, EvaluationChanges(output=LARGE_OUTPUT))

    raw, content = await _read(app, seeded.id, accept_zstd=True)
    assert content.encoding == "zstd"
    assert zstandard.ZstdDecompressor().stream_reader(raw).read() == LARGE_OUTPUT.encode()
    assert content.length == len(raw)

    ranged, content = await _read(
        app, seeded.id, accept_zstd=True, byte_range=RequestedRange(start=0, end=4)
    )
    assert (content.encoding, ranged) == (None, LARGE_OUTPUT.encode()[:4])
    await app.update.execute(seeded.id, EvaluationChanges(output="tiny"))
    assert (await _read(app, seeded.id, accept_zstd=True))[1].encoding is None
