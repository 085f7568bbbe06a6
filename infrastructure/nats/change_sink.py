"""``ChangeSink`` on a JetStream stream: one message per change, in feed order.

Each change goes to ``<subject>.<kind>`` with its cursor token as ``Nats-Msg-Id`` (the
server drops a repeat within the stream's duplicate window; consumers dedupe by it past
that). Each publish names the stream's last sequence (``Nats-Expected-Last-Sequence``):
the server refuses it when anything else was stored since, so two relays never
interleave. ``Nats-Expected-Last-Msg-Id`` would say the same but is not durable: the
server keeps the last id in memory only, and after a restart it refuses every publish
that names one (checked on nats-server 2.9).
"""

from collections.abc import Callable, Sequence

from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from application.ports.change_sink import (
    ChangeSinkMovedError,
    ChangeSinkUnavailableError,
    SinkPosition,
)
from domain.changes import Change, ChangeCursor
from domain.errors import InvalidTextError

MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"
# JetStream's error code for a publish whose Nats-Expected-Last-Sequence is not the last.
WRONG_LAST_SEQUENCE = 10071

Encode = Callable[[Change], bytes]


class JetStreamChangeSink:
    """Publishes to ``stream`` (created on ``prepare`` when missing, over ``<subject>.>``)."""

    def __init__(self, js: JetStreamContext, stream: str, subject: str, encode: Encode) -> None:
        self._js = js
        self._stream = stream
        self._subject = subject
        self._encode = encode

    async def prepare(self) -> None:
        """Create the stream when it does not exist; an existing one is left as it is."""
        try:
            await self._js.stream_info(self._stream)
        except NotFoundError:
            await self._js.add_stream(
                StreamConfig(name=self._stream, subjects=[f"{self._subject}.>"])
            )

    async def position(self) -> SinkPosition:
        try:
            last = await self._js.get_last_msg(self._stream, f"{self._subject}.>")
        except NotFoundError:  # no change yet (the stream may have held and lost some)
            info = await self._js.stream_info(self._stream)
            return SinkPosition(cursor=None, mark=info.state.last_seq)
        token = (last.headers or {}).get(MSG_ID, "")
        try:
            cursor = ChangeCursor.parse(token, MSG_ID)
        except InvalidTextError:
            raise ChangeSinkUnavailableError(
                f"the last message of stream {self._stream} (sequence {last.seq}) has "
                f"{MSG_ID} {token!r}, not a change cursor: something else publishes there"
            ) from None
        return SinkPosition(cursor=cursor, mark=last.seq or 0)

    async def publish(self, changes: Sequence[Change], after: SinkPosition) -> SinkPosition:
        position = after
        for change in changes:
            headers = {MSG_ID: change.cursor.token(), EXPECTED_LAST_SEQUENCE: str(position.mark)}
            try:
                ack = await self._js.publish(
                    f"{self._subject}.{change.kind}", self._encode(change), headers=headers
                )
            except APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    raise ChangeSinkMovedError(
                        f"stream {self._stream} moved past sequence {position.mark}"
                    ) from None
                raise
            # A repeat stored before is acknowledged with the sequence it was stored at.
            position = SinkPosition(cursor=change.cursor, mark=ack.seq)
        return position
