"""The plans of an evaluation's log: append, read from an offset, follow."""

from typing import Never

from crucible_storage._build import or_unset, query, read, resource_path, write
from crucible_storage._plan import Call, Emit, Plan, Sleep, one
from crucible_storage.models import TERMINAL_STATUSES, AppendLogBody, LogAppend, Logs, Timestamp


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


def follow_logs(
    id: str,
    *,
    offset: int = 0,
    poll_interval: float = 1.0,
    stop_when_finished: bool = True,
) -> Plan[str, None]:
    """The log's new text as it arrives, until the evaluation has finished (if asked)."""
    while True:
        logs: Logs = yield _logs_call(id, offset)
        if logs.content:
            yield Emit(logs.content)
        offset = logs.next_offset
        if stop_when_finished and logs.status in TERMINAL_STATUSES:
            return
        yield Sleep(poll_interval)
