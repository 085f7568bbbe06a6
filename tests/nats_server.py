"""The NATS server with JetStream the relay tests publish to (never mocked).

Found by URL (``TEST_NATS_URL``, default 127.0.0.1:4222); in CI a missing server fails
the test loudly, on a laptop it skips (``require_service``). Each test gets a stream and
subject prefix of its own, deleted afterwards.
"""

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import nats
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from tests.services import require_service

TEST_NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")


class JetStreamNames(msgspec.Struct, frozen=True):
    stream: str
    subject: str

    def settings(self, url: str = TEST_NATS_URL) -> dict[str, str]:
        """The ``nats`` settings group that relays to this stream."""
        return {"url": url, "stream": self.stream, "subject": self.subject}

    def env(self, url: str = TEST_NATS_URL) -> dict[str, str]:
        return {"NATS_URL": url, "NATS_STREAM": self.stream, "NATS_SUBJECT": self.subject}


class Received(msgspec.Struct, frozen=True):
    """One message as a consumer sees it."""

    subject: str
    msg_id: str
    body: dict[str, object]


@contextmanager
def jetstream_names() -> Iterator[JetStreamNames]:
    """A fresh stream name and subject prefix; the stream is deleted at the end."""
    require_service("NATS", TEST_NATS_URL, 4222)
    tag = uuid.uuid4().hex[:10]
    names = JetStreamNames(stream=f"TEST_{tag.upper()}", subject=f"test.{tag}.changes")
    try:
        yield names
    finally:
        asyncio.run(_delete_stream(names.stream))


async def _delete_stream(stream: str) -> None:
    client = await nats.connect(TEST_NATS_URL)
    try:
        await client.jetstream().delete_stream(stream)
    except NotFoundError:
        pass
    finally:
        await client.close()


async def stream_messages(names: JetStreamNames) -> int:
    """How many messages the stream holds now (0 before the relay created it)."""
    client = await nats.connect(TEST_NATS_URL)
    try:
        return (await client.jetstream().stream_info(names.stream)).state.messages
    except NotFoundError:
        return 0
    finally:
        await client.close()


def wait_for_messages(names: JetStreamNames, count: int, timeout_s: float = 30) -> None:
    """Until the stream holds at least ``count`` messages."""
    deadline = time.monotonic() + timeout_s
    while (held := asyncio.run(stream_messages(names))) < count:
        assert time.monotonic() < deadline, f"the stream holds {held} of {count} messages"
        time.sleep(0.05)


async def consume(names: JetStreamNames, timeout_s: float = 30) -> list[Received]:
    """Every message of the stream, from its start, through a JetStream consumer."""
    client = await nats.connect(TEST_NATS_URL)
    try:
        js = client.jetstream()
        total = (await js.stream_info(names.stream)).state.messages
        subscription = await js.subscribe(
            f"{names.subject}.>", stream=names.stream, ordered_consumer=True
        )
        received: list[Received] = []
        while len(received) < total:
            message = await subscription.next_msg(timeout=timeout_s)
            received.append(
                Received(
                    subject=message.subject,
                    msg_id=(message.headers or {}).get("Nats-Msg-Id", ""),
                    body=msgspec.json.decode(message.data),
                )
            )
        await subscription.unsubscribe()
        return received
    finally:
        await client.close()


async def create_stream(names: JetStreamNames, duplicate_window_s: float) -> None:
    """The stream made ahead of the relay (which leaves an existing one as it is)."""
    client = await nats.connect(TEST_NATS_URL)
    try:
        await client.jetstream().add_stream(
            StreamConfig(
                name=names.stream,
                subjects=[f"{names.subject}.>"],
                duplicate_window=duplicate_window_s,
            )
        )
    finally:
        await client.close()
