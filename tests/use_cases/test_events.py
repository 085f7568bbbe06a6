from datetime import timedelta

import pytest

from application.commands import NewEvent
from application.errors import EvaluationNotFoundError
from domain.errors import InvalidTextError
from domain.identifiers import parse_evaluation_id
from domain.status import EvaluationStatus
from tests.factories import BASE_TIME, AddEventBodyFactory
from tests.use_cases.conftest import UseCases

pytestmark = pytest.mark.anyio


def _new_event(event_type: str | None = None, **fields: object) -> NewEvent:
    """A use-case input from a request body as a client sends it; ``event_type`` pins the type."""
    body = AddEventBodyFactory.build(**fields)
    return NewEvent(
        event_type=body.kind() if event_type is None else event_type,
        message=body.message,
        metadata=body.metadata,
        timestamp=body.timestamp,
        event_id=body.event_id,
    )


async def test_timeline_is_chronological_whatever_the_arrival_order(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    for minutes, name in ((3, "third"), (1, "first"), (2, "second")):
        await app.record_event.execute(
            seeded.id,
            _new_event(event_type=name, timestamp=BASE_TIME + timedelta(minutes=minutes)),
        )

    timeline = await app.list_events.execute(seeded.id)

    assert [e.event_type for e in timeline] == ["first", "second", "third"]


async def test_equal_timestamps_keep_append_order(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    for name in ("a", "b", "c"):
        await app.record_event.execute(seeded.id, _new_event(event_type=name, timestamp=BASE_TIME))

    timeline = await app.list_events.execute(seeded.id)

    assert [e.event_type for e in timeline] == ["a", "b", "c"]


async def test_message_and_metadata_are_kept(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    new = _new_event(message="container up", metadata={"node": "n1", "gpu": [0, 1]})

    recorded = await app.record_event.execute(seeded.id, new)

    [stored] = await app.list_events.execute(seeded.id)
    assert stored == recorded
    assert (stored.message, stored.metadata) == ("container up", {"node": "n1", "gpu": [0, 1]})
    assert stored.event_id == new.event_id
    assert app.uow.committed


async def test_missing_timestamp_and_id_are_filled(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    now = app.clock.advance(seconds=42)

    recorded = await app.record_event.execute(seeded.id, NewEvent(event_type="tick"))

    assert recorded.timestamp == now
    assert len(recorded.event_id) == 32
    assert recorded.evaluation_id == seeded.id


async def test_repeated_event_id_is_stored_once(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    new = _new_event(event_id="evt-1")

    await app.record_event.execute(seeded.id, new)
    await app.record_event.execute(seeded.id, new)

    assert [e.event_id for e in await app.list_events.execute(seeded.id)] == ["evt-1"]


async def test_unknown_evaluation_is_not_found(app: UseCases) -> None:
    missing = parse_evaluation_id("missing")

    with pytest.raises(EvaluationNotFoundError):
        await app.record_event.execute(missing, _new_event())
    with pytest.raises(EvaluationNotFoundError):
        await app.list_events.execute(missing)


async def test_deleted_evaluation_is_not_found(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.delete.execute(seeded.id)

    with pytest.raises(EvaluationNotFoundError):
        await app.list_events.execute(seeded.id)


@pytest.mark.parametrize("field", ["event_type", "message"])
async def test_nul_in_text_is_refused(app: UseCases, field: str) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)

    with pytest.raises(InvalidTextError) as caught:
        await app.record_event.execute(seeded.id, _new_event(**{field: "bad\x00"}))

    assert caught.value.field == field
    assert await app.list_events.execute(seeded.id) == []


async def test_a_redelivered_event_answers_with_the_stored_one(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    first = await app.record_event.execute(seeded.id, NewEvent(event_type="a", event_id="x"))
    app.clock.advance(minutes=5)

    again = await app.record_event.execute(seeded.id, NewEvent(event_type="b", event_id="x"))

    assert again == first
    assert [e.event_type for e in await app.list_events.execute(seeded.id)] == ["a"]


async def test_a_timestamp_without_offset_is_read_as_utc(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    naive = BASE_TIME.replace(tzinfo=None) + timedelta(minutes=1)
    await app.record_event.execute(seeded.id, NewEvent(event_type="naive", timestamp=naive))
    await app.record_event.execute(seeded.id, NewEvent(event_type="now"))

    timeline = await app.list_events.execute(seeded.id)

    assert [e.event_type for e in timeline] == ["now", "naive"]
    assert timeline[1].timestamp == BASE_TIME + timedelta(minutes=1)
    assert timeline[1].timestamp.utcoffset() == timedelta(0)
