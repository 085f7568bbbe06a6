"""Server-sent events decoded from a body's chunks, as an EventSource reads them.

Fed bytes as they arrive, so the plans that follow a stream stay free of I/O and
both clients share them. Follows the WHATWG parsing rules the service relies on:
any line ending, comments (keepalives) skipped, ``id`` kept from event to event,
and an event's ``id`` counted as seen only once its blank line has arrived.
"""

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class ServerEvent:
    data: str
    event: str = "message"
    id: str | None = None


class EventDecoder:
    """The events of one connection; ``last_id`` is what ``Last-Event-ID`` resumes from."""

    def __init__(self, last_id: str | None = None) -> None:
        self.last_id = last_id
        self._pending = b""
        self._data: list[str] = []
        self._event = ""
        self._id = last_id

    def feed(self, chunk: bytes) -> list[ServerEvent]:
        """The events ``chunk`` completes; a partial line waits for the next chunk."""
        pending = self._pending + chunk
        events: list[ServerEvent] = []
        start = 0
        for end in _LINE_END.finditer(pending):
            if end.group() == b"\r" and end.end() == len(pending):
                break  # the "\n" of a "\r\n" may come with the next chunk
            event = self._line(pending[start : end.start()].decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            start = end.end()
        self._pending = pending[start:]
        return events

    def _line(self, line: str) -> ServerEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> ServerEvent | None:
        self.last_id = self._id
        data, event = self._data, self._event or "message"
        self._data, self._event = [], ""
        if not data:
            return None  # an id alone still moves where a reconnect resumes
        return ServerEvent("\n".join(data), event, self._id)
