"""Following a stream of server-sent events: each event once, in order, across reconnects.

A stream that breaks off, ends, or cannot be opened for now is opened again after
the client's backoff with ``Last-Event-ID`` set to the last event received, and the
service resumes right after it: nothing is skipped, nothing repeated. Like an
EventSource it never gives up on a service that is down; the caller stops reading
to stop following.
"""

from collections.abc import Callable
from typing import TypeVar

from crucible_storage._build import new_request
from crucible_storage._plan import RECEIVE, Emit, Open, Params, Plan, Reconnect, Reply, Request
from crucible_storage._sse import EventDecoder, ServerEvent
from crucible_storage.errors import TransportError, error_for
from crucible_storage.retry import RETRY_ERRORS, RETRY_STATUSES

T = TypeVar("T")


def follow_stream(
    path: str,
    params: Params,
    decode: Callable[[ServerEvent], T | None],
    *,
    until: str | None = None,
) -> Plan[T, None]:
    """What ``decode`` makes of each event of the stream at ``path`` (``None`` skips one),
    until an event named ``until`` arrives; a 4xx other than 408 and 429 is raised."""
    last_id: str | None = None
    failures = 0
    while True:
        decoder = EventDecoder(last_id)
        outcome: Reply | Exception | bytes = yield Open(_request(path, params, last_id))
        if isinstance(outcome, Reply) and outcome.status < 300:
            while True:
                outcome = yield RECEIVE
                if not isinstance(outcome, bytes) or not outcome:
                    break  # broken off (an error) or ended (b"")
                failures = 0
                for event in decoder.feed(outcome):
                    if event.event == until:
                        return
                    if not event.data:
                        continue  # a keepalive: the service sends ": keepalive" + "data: "
                    item = decode(event)
                    if item is not None:
                        yield Emit(item)
                last_id = decoder.last_id
        yield Reconnect(failures, _retry_after(path, outcome))
        failures += 1


def _request(path: str, params: Params, last_id: str | None) -> Request:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    return new_request("GET", path, params=params, headers=headers)


def _retry_after(path: str, outcome: Reply | Exception | bytes) -> str | None:
    """The ``Retry-After`` of an outcome to reconnect after; the error of a final one."""
    if isinstance(outcome, Reply):
        if outcome.status in RETRY_STATUSES or outcome.status >= 500:
            wait: str | None = outcome.headers.get("retry-after")
            return wait
        raise error_for(outcome.status, outcome.headers, outcome.body)
    if isinstance(outcome, Exception) and not isinstance(outcome, RETRY_ERRORS):
        raise TransportError(f"GET {path}: {type(outcome).__name__}: {outcome}") from outcome
    return None  # the stream broke off or ended: open it again
