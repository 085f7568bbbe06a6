"""Server-sent events read from an httpx response, as an EventSource parses them."""

from collections.abc import Iterator

import httpx
import msgspec


class Event(msgspec.Struct, frozen=True):
    data: str
    id: str | None = None
    event: str = "message"


KEEPALIVE = Event(data="", event=":comment")


def events(response: httpx.Response) -> Iterator[Event]:
    """The events of ``response`` in order; a comment line comes as ``KEEPALIVE``."""
    data: list[str] = []
    event_id: str | None = None
    kind = "message"
    for line in response.iter_lines():
        if line.startswith(":"):
            yield KEEPALIVE
            continue
        if not line:
            if data:
                yield Event(data="\n".join(data), id=event_id, event=kind)
            data, event_id, kind = [], None, "message"
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
        elif name == "event":
            kind = value


def take(stream: Iterator[Event], count: int) -> list[Event]:
    """The next ``count`` events of ``stream``, keep-alives skipped."""
    taken: list[Event] = []
    for event in stream:
        if event != KEEPALIVE:
            taken.append(event)
        if len(taken) == count:
            return taken
    raise AssertionError(f"the stream ended after {taken}")
