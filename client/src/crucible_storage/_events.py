"""The plans of an evaluation's timeline of events: add, list, follow."""

from typing import Any, Never

from crucible_storage._build import or_unset, query, read, resource_path, write
from crucible_storage._plan import Call, Emit, Plan, Sleep, one
from crucible_storage.bodies import AddEventBody
from crucible_storage.models import TERMINAL_STATUSES, EvaluationFields, Event, Timestamp


def add_event(
    id: str,
    type: str,
    *,
    message: str | None = None,
    metadata: dict[str, Any] | None = None,
    timestamp: Timestamp | None = None,
    event_id: str | None = None,
    idempotency_key: str | None = None,
) -> Plan[Never, Event]:
    """Add an event to the timeline; a repeated ``event_id`` is stored once."""
    body = AddEventBody(
        type=type,
        message=or_unset(message),
        metadata=or_unset(metadata),
        timestamp=or_unset(timestamp),
        event_id=or_unset(event_id),
    )
    path = resource_path("evaluations", id, "events")
    return (yield from one(write("POST", path, Event, body=body, key=idempotency_key)))


def _events_call(id: str) -> Call[list[Event]]:
    return read(resource_path("evaluations", id, "events"), list[Event])


def list_events(id: str) -> Plan[Never, list[Event]]:
    """The timeline, oldest first."""
    return (yield from one(_events_call(id)))


def follow_events(
    id: str,
    *,
    poll_interval: float = 1.0,
    stop_when_finished: bool = True,
) -> Plan[Event, None]:
    """Each event once, as it is added, until the evaluation has finished (if asked).

    The status is read before the events, so the last round sees every event
    added before the evaluation finished.
    """
    seen: set[str] = set()
    while True:
        finished = False
        if stop_when_finished:
            record = yield read(
                resource_path("evaluations", id), EvaluationFields, query(fields=["status"])
            )
            finished = record.status in TERMINAL_STATUSES
        events: list[Event] = yield _events_call(id)
        for event in events:
            if event.event_id not in seen:
                seen.add(event.event_id)
                yield Emit(event)
        if finished:
            return
        yield Sleep(poll_interval)
