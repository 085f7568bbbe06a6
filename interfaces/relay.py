"""The relay of the change feed to NATS JetStream, wired: ``storage-service relay``, or a
background job of ``serve`` when ``NATS_URL`` is set.

Each page of the feed is read in a scope of its own (``LiveFeed.read``), so the relay
holds no database connection between pages. A run ends when its NATS connection does;
the background job then starts another after ``RETRY_S``, from what JetStream holds.
"""

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import msgspec
from dishka import AsyncContainer

from application.ports.change_sink import ChangeSinkUnavailableError
from application.ports.clock import Clock
from application.use_cases.changes import FeedRetention
from application.use_cases.relay_changes import RelayChanges, RelayProgress
from domain.changes import Change
from infrastructure.nats.change_sink import JetStreamChangeSink
from infrastructure.nats.connection import jetstream
from interfaces.background import background, wait_or_stop
from interfaces.http.schemas.changes import ChangeBody
from interfaces.live import LiveFeed
from interfaces.settings import NatsSettings, Settings

logger = logging.getLogger("storage_service.relay")

RETRY_S = 2.0
PROGRESS_EVERY_S = 10.0


def encode_change(change: Change) -> bytes:
    """A message's payload: the change as ``GET /changes`` shows it."""
    return msgspec.json.encode(ChangeBody.of(change))


@asynccontextmanager
async def nats_sink(settings: NatsSettings) -> AsyncIterator[JetStreamChangeSink]:
    """The stream of ``settings`` (created when missing) on a connection of its own."""
    if settings.url is None:
        raise ChangeSinkUnavailableError("set NATS_URL (nats://host:4222) to relay the feed")
    async with AsyncExitStack() as stack:
        try:
            js = await stack.enter_async_context(jetstream(settings.url, name="crucible relay"))
        except ChangeSinkUnavailableError as exc:
            raise ChangeSinkUnavailableError(f"NATS_URL: {exc}") from exc
        sink = JetStreamChangeSink(js, settings.stream, settings.subject, encode_change)
        await sink.prepare()
        yield sink


class ProgressLog:
    """Logs how far the relay got, at most once every ``every_s``."""

    def __init__(self, stream: str, every_s: float) -> None:
        self._stream = stream
        self._every_s = every_s
        self._due = time.monotonic() + every_s
        self.last = RelayProgress()

    def __call__(self, progress: RelayProgress) -> None:
        self.last = progress
        if time.monotonic() >= self._due:
            self.log()

    def log(self) -> None:
        self._due = time.monotonic() + self._every_s
        cursor = self.last.cursor
        logger.info(
            "relayed %d change(s) to %s; its last cursor: %s",
            self.last.relayed,
            self._stream,
            "none" if cursor is None else cursor.token(),
            extra={"relayed": self.last.relayed, "cursor": cursor and cursor.token()},
        )


async def relay(
    container: AsyncContainer,
    settings: Settings,
    stopping: anyio.Event,
    *,
    every_s: float = PROGRESS_EVERY_S,
    page: int = 500,
) -> RelayProgress:
    """Relay the feed until ``stopping`` (or the connection ends: then it raises)."""
    live = await container.get(LiveFeed)
    async with nats_sink(settings.nats) as sink:
        use_case = RelayChanges(
            read=live.read,
            sink=sink,
            clock=await container.get(Clock),
            retention=await container.get(FeedRetention),
            poll_s=settings.changes.poll_ms / 1000,
            page=page,
        )
        progress = ProgressLog(settings.nats.stream, every_s)
        try:
            return await use_case.execute(stopping, progress)
        finally:
            progress.log()


async def _relay_until_stopped(
    container: AsyncContainer, settings: Settings, stopping: anyio.Event
) -> None:
    while not stopping.is_set():
        try:
            await relay(container, settings, stopping)
        except ChangeSinkUnavailableError as exc:
            logger.warning("NATS relay: %s; trying again in %.0f s", exc, RETRY_S)
        except Exception:  # a dropped connection, a timeout: the next run resumes
            logger.exception("NATS relay failed; trying again in %.0f s", RETRY_S)
        await wait_or_stop(stopping, RETRY_S)


@asynccontextmanager
async def nats_relay(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """While the app runs: the relay, when ``NATS_URL`` is set."""
    if settings.nats.url is None:
        yield
        return

    async def run(stopping: anyio.Event) -> None:
        await _relay_until_stopped(container, settings, stopping)

    async with background("NATS relay", run):
        yield
