"""What the live pages read: where their change stream starts, and a record's parts.

A live page renders what is stored, then follows ``/changes/stream`` and re-reads a
part when a change touches it. Its stream starts at the feed's end as it was *before*
the page's own reads, so a change that commits while the page renders is delivered
(perhaps twice: re-reading a part is idempotent) and never lost.
"""

import contextlib
from typing import Any
from urllib.parse import urlencode

from application.errors import BackendUnavailableError
from application.use_cases.events import ListEvents
from application.use_cases.get_evaluation import GetEvaluation
from domain.changes import ChangeKind
from domain.identifiers import EvaluationId
from interfaces.http.explorer import charts, views
from interfaces.live import TenantFeed

# What moves the list: a record appears, changes status or goes (updates show on its page).
LIST_KINDS = (ChangeKind.CREATED, ChangeKind.STATUS_CHANGED, ChangeKind.DELETED, ChangeKind.PURGED)
# What a record page re-reads for; its log has a stream of its own.
RECORD_KINDS = tuple(kind for kind in ChangeKind if kind is not ChangeKind.LOG_APPENDED)


async def changes_url(
    live: TenantFeed, kinds: tuple[ChangeKind, ...], evaluation_id: str | None = None
) -> str:
    """``/changes/stream`` for ``kinds`` from the feed's current end.

    With the feed unreachable the stream starts wherever it is when it opens; the page
    itself may still render from the failover path.
    """
    query: list[tuple[str, str]] = [("kind", kind.value) for kind in kinds]
    if evaluation_id is not None:
        query.append(("evaluation_id", evaluation_id))
    with contextlib.suppress(BackendUnavailableError):
        query.append(("after", (await live.latest()).token()))
    return f"/changes/stream?{urlencode(query)}"


async def record_parts(
    identifier: EvaluationId, get_evaluation: GetEvaluation, list_events: ListEvents
) -> dict[str, Any]:
    """The context of a record's live parts: fields, storage, payloads and timeline."""
    record = await get_evaluation.execute(identifier)
    events = await list_events.execute(identifier)
    return {
        "e": record,
        "metadata": views.pretty_json(record.metadata),
        "events": events,
        "timeline": charts.timeline(
            [(event.timestamp, event.event_type) for event in events],
            title=f"Timeline of {record.id}",
        ),
    }
