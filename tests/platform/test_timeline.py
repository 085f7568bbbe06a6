"""Events and deletes, each call built as the platform builds it, each answer read as it reads it.

Facts (crucible-eval-platform): the original service's ``EventCreate`` is
``{type, message, metadata}`` with ``metadata`` defaulting to ``{}``, sent whole
(pydantic ``model_dump``); ``POST …/events`` answers 200 with ``EventResponse``
``{type, timestamp (ISO 8601), message, metadata}``; ``GET …/events`` answers a
JSON list of those, read with ``len(data)`` and ``data[0]["type"]``; both answer
404 for an unknown evaluation. ``DELETE /evaluations/{id}`` answers 200
``{"message": "Evaluation deleted successfully"}`` (its test checks the status
and ``"message" in body``); the integration tests send it as clean-up and do not
read the answer. Records are created with ``EvaluationCreate(id, code,
language="python").model_dump()``.
"""

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from litestar.testing import TestClient

from interfaces.settings import Settings
from tests.integration.conftest import ClientFactory
from tests.pg_server import wait_until
from tests.services import beneath_row_security

Client = TestClient[Any]
EVENT_RESPONSE_FIELDS = {"type", "timestamp", "message", "metadata"}


def create(client: Client, eval_id: str) -> None:
    """``EvaluationCreate(id=..., code=..., language="python").model_dump()``."""
    body = {
        "id": eval_id,
        "code": 'print("Sequential task 0")',
        "language": "python",
        "status": "queued",
        "metadata": {},
    }
    response = client.post("/evaluations", json=body)
    assert response.is_success, response.text


def add_event(client: Client, eval_id: str, event_type: str, message: str, **metadata: Any) -> Any:
    """``EventCreate(type=..., message=..., metadata=...).model_dump()``: every field is sent."""
    body = {"type": event_type, "message": message, "metadata": metadata}
    return client.post(f"/evaluations/{eval_id}/events", json=body)


def test_adding_an_event_answers_200_with_the_event(client: Client) -> None:
    create(client, "test-123")

    response = add_event(client, "test-123", "custom_event", "Something happened", key="value")

    assert response.status_code == 200, response.text
    event = response.json()
    assert event.keys() >= EVENT_RESPONSE_FIELDS, event
    assert event["type"] == "custom_event"
    assert event["message"] == "Something happened"
    assert event["metadata"] == {"key": "value"}
    assert datetime.fromisoformat(event["timestamp"]).tzinfo is not None
    assert "event_type" not in event


def test_an_event_with_the_default_metadata(client: Client) -> None:
    create(client, "test-124")

    response = add_event(client, "test-124", "status_change", "queued to running")

    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {}


def test_the_events_are_a_list_in_the_order_they_were_added(client: Client) -> None:
    create(client, "test-125")
    for event_type, message in [
        ("submitted", "Evaluation submitted"),
        ("status_change", "Status changed from queued to running"),
        ("custom_event", "Something happened"),
    ]:
        assert add_event(client, "test-125", event_type, message).status_code == 200

    response = client.get("/evaluations/test-125/events")

    assert response.status_code == 200, response.text
    data = response.json()
    assert isinstance(data, list)
    assert len(data) == 3
    assert [event["type"] for event in data] == ["submitted", "status_change", "custom_event"]
    assert data[1]["message"] == "Status changed from queued to running"
    for event in data:
        assert event.keys() >= EVENT_RESPONSE_FIELDS, event
        assert datetime.fromisoformat(event["timestamp"]).tzinfo is not None


def test_an_evaluation_without_events_has_an_empty_list(client: Client) -> None:
    create(client, "test-126")

    response = client.get("/evaluations/test-126/events")

    assert response.status_code == 200, response.text
    assert response.json() == []


def test_events_of_an_unknown_evaluation_are_404(client: Client) -> None:
    assert add_event(client, "nope-1", "custom_event", "x").status_code == 404
    assert client.get("/evaluations/nope-1/events").status_code == 404


def test_delete_answers_200_with_the_message(client: Client) -> None:
    create(client, "test-seq-0-1722945600")

    response = client.delete("/evaluations/test-seq-0-1722945600")

    assert response.status_code == 200, response.text
    assert "message" in response.json()
    assert response.json()["message"] == "Evaluation deleted successfully"
    assert client.get("/evaluations/test-seq-0-1722945600").status_code == 404


def test_delete_of_an_unknown_evaluation_is_404(client: Client) -> None:
    assert client.delete("/evaluations/test-direct-0").status_code == 404


@pytest.mark.parametrize(
    "backend_settings",
    [pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis])],
    indirect=True,
)
@pytest.mark.alone("the journal's pending count is the deployment's")
def test_during_an_outage_an_event_and_a_delete_keep_their_answers(
    backend_settings: Settings, make_client: ClientFactory
) -> None:
    """PostgreSQL held up by a row lock: both writes are journaled, answered as above, replayed."""
    client = make_client(database={"statement_timeout_ms": 300})
    create(client, "test-127")
    url = beneath_row_security(backend_settings.database.url)  # the service's role sees no row
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    async def write_behind_a_lock() -> tuple[Any, Any, Any]:
        locker = await asyncpg.connect(dsn)
        try:
            async with locker.transaction():
                await locker.execute("SELECT 1 FROM evaluations WHERE id = 'test-127' FOR UPDATE")
                event = await asyncio.to_thread(add_event, client, "test-127", "late", "journaled")
                deleted = await asyncio.to_thread(client.delete, "/evaluations/test-127")
                health = await asyncio.to_thread(client.get, "/health")
                return event, deleted, health.json()
        finally:
            await locker.close()

    event, deleted, health = asyncio.run(write_behind_a_lock())

    assert health["pending_replay"] == 2, health  # both writes went to the journal
    assert event.status_code == 200, event.text
    assert (event.json()["type"], event.json()["message"]) == ("late", "journaled")
    assert deleted.status_code == 200, deleted.text  # the record is known: 202 is for unknown ones
    assert deleted.json()["message"] == "Evaluation deleted successfully"
    assert wait_until(lambda: client.get("/health").json()["pending_replay"] == 0, 20)
    assert client.get("/evaluations/test-127").status_code == 404
    stored = asyncio.run(event_types(dsn, "test-127"))
    assert stored == ["late"]


async def event_types(dsn: str, eval_id: str) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT event_type FROM evaluation_events WHERE evaluation_id = $1", eval_id
        )
        return [row["event_type"] for row in rows]
    finally:
        await connection.close()
