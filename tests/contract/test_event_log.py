"""EventLog contract: idempotent appends, chronological timelines."""

from datetime import timedelta

import pytest

from application.errors import EvaluationNotFoundError
from domain.identifiers import EvaluationId
from domain.timeline import EvaluationEvent
from tests.contract.conftest import BASE_TIME, PortStore, make_evaluation

pytestmark = pytest.mark.anyio

EVAL = EvaluationId("eval-events")


def _event(event_id: str, seconds: float = 0, **fields: object) -> EvaluationEvent:
    return EvaluationEvent(
        evaluation_id=fields.pop("evaluation_id", EVAL),  # type: ignore[arg-type]
        event_id=event_id,
        event_type=str(fields.pop("event_type", "status_changed")),
        timestamp=BASE_TIME + timedelta(seconds=seconds),
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
async def store(sql_backend: PortStore) -> PortStore:
    async with sql_backend.session() as ports:
        await ports.repository.add(make_evaluation(EVAL))
        await ports.repository.add(make_evaluation("other"))
    return sql_backend


async def test_append_round_trips_every_field(store: PortStore) -> None:
    event = _event(
        "e1",
        message="Started ✓ — ünïcode",
        metadata={"from": "queued", "to": "running", "nested": {"list": [1, None]}},
    )
    async with store.session() as ports:
        assert await ports.events.append(event) is True
    async with store.session() as ports:
        assert await ports.events.list(EVAL) == [event]


async def test_redelivered_event_is_stored_once(store: PortStore) -> None:
    async with store.session() as ports:
        assert await ports.events.append(_event("same", message="first")) is True
    async with store.session() as ports:
        assert await ports.events.append(_event("same", 5, message="second")) is False
        # The transaction is still usable after the ignored duplicate.
        assert await ports.events.append(_event("next", 6)) is True
    async with store.session() as ports:
        timeline = await ports.events.list(EVAL)
    assert [(e.event_id, e.message) for e in timeline] == [("same", "first"), ("next", None)]


async def test_same_event_id_on_another_evaluation_is_distinct(store: PortStore) -> None:
    async with store.session() as ports:
        assert await ports.events.append(_event("shared")) is True
        assert (
            await ports.events.append(_event("shared", evaluation_id=EvaluationId("other"))) is True
        )
        assert len(await ports.events.list(EVAL)) == 1
        assert len(await ports.events.list(EvaluationId("other"))) == 1


async def test_timeline_is_chronological_with_ties_in_append_order(store: PortStore) -> None:
    async with store.session() as ports:
        for event_id, seconds in [("c", 30), ("a", 10), ("tie-1", 20), ("tie-2", 20), ("b", 0)]:
            assert await ports.events.append(_event(event_id, seconds)) is True
    async with store.session() as ports:
        timeline = await ports.events.list(EVAL)
    assert [e.event_id for e in timeline] == ["b", "a", "tie-1", "tie-2", "c"]


async def test_unknown_evaluation(store: PortStore) -> None:
    async with store.session() as ports:
        assert await ports.events.list(EvaluationId("nobody")) == []
        with pytest.raises(EvaluationNotFoundError):
            await ports.events.append(_event("x", evaluation_id=EvaluationId("nobody")))
        # A refused append leaves the transaction usable.
        assert await ports.events.append(_event("y")) is True
