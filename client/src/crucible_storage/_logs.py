"""The plans of an evaluation's log: append, read from an offset, follow."""

from typing import Never

import msgspec

from crucible_storage._build import or_unset, query, read, resource_path, write
from crucible_storage._follow import follow_stream
from crucible_storage._plan import Call, Plan, one
from crucible_storage._sse import ServerEvent
from crucible_storage.bodies import AppendLogBody
from crucible_storage.models import LogAppend, LogPiece, Logs, Timestamp


def append_log(
    id: str,
    content: str,
    *,
    timestamp: Timestamp | None = None,
    last_update: Timestamp | None = None,
    idempotency_key: str | None = None,
) -> Plan[Never, LogAppend]:
    body = AppendLogBody(
        content=content, timestamp=or_unset(timestamp), last_update=or_unset(last_update)
    )
    path = resource_path("evaluations", id, "logs")
    return (yield from one(write("POST", path, LogAppend, body=body, key=idempotency_key)))


def _logs_call(id: str, offset: int | None) -> Call[Logs]:
    return read(resource_path("evaluations", id, "logs"), Logs, query(offset=offset))


def get_logs(id: str, *, offset: int | None = None) -> Plan[Never, Logs]:
    """The log; ``content`` holds it from byte ``offset`` on (``next_offset`` continues)."""
    return (yield from one(_logs_call(id, offset)))


_piece = msgspec.json.Decoder(LogPiece)


def _text(event: ServerEvent) -> str | None:
    if event.event != "message":
        return None
    return _piece.decode(event.data).content or None


def follow_logs(id: str, *, offset: int = 0) -> Plan[str, None]:
    """The log's text from byte ``offset`` on, as it is appended, until the evaluation has
    finished (or is deleted) and the whole log was given. A dropped stream is reopened
    after the last byte received, so no text is lost or given twice."""
    path = resource_path("evaluations", id, "logs", "stream")
    return (yield from follow_stream(path, query(offset=offset), _text, until="end"))
