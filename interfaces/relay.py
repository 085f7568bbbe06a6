"""The relay of the change feed to NATS JetStream, wired: ``storage-service relay``, or a
background job of ``serve`` when ``NATS_URL`` is set.

Each tenant's feed goes to a stream of its own (``stream_names``): JetStream refuses two
streams whose subjects overlap, and a consumer of one tenant's stream must see no other
tenant's changes (ADR 0032). The background job runs a relay per tenant side by side.

Each page of the feed is read in a scope of its own (``TenantFeed.read``), so the relay
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
from domain.tenancy import DEFAULT_TENANT, TenantId
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


def stream_names(settings: NatsSettings, tenant: TenantId) -> tuple[str, str]:
    """``tenant``'s stream and subject prefix: ``NATS_STREAM`` and ``NATS_SUBJECT`` for the
    default tenant, ``NATS_STREAM_<tenant>`` over ``NATS_SUBJECT_<tenant>`` for another."""
    if tenant == DEFAULT_TENANT:
        return settings.stream, settings.subject
    return f"{settings.stream}_{tenant}", f"{settings.subject}_{tenant}"


@asynccontextmanager
async def nats_sink(settings: NatsSettings, tenant: TenantId) -> AsyncIterator[JetStreamChangeSink]:
    """``tenant``'s stream (created when missing) on a connection of its own."""
    if settings.url is None:
        raise ChangeSinkUnavailableError("set NATS_URL (nats://host:4222) to relay the feed")
    async with AsyncExitStack() as stack:
        try:
            js = await stack.enter_async_context(jetstream(settings.url, name="crucible relay"))
        except ChangeSinkUnavailableError as exc:
            raise ChangeSinkUnavailableError(f"NATS_URL: {exc}") from exc
        stream, subject = stream_names(settings, tenant)
        sink = JetStreamChangeSink(js, stream, subject, encode_change)
        await sink.prepare()
        yield sink


class ProgressLog:
    """Logs how far the relay got, at most once every ``every_s``."""

    def __init__(self, stream: str, tenant: TenantId, every_s: float) -> None:
        self._stream = stream
        self._tenant = tenant
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
            "relayed %d change(s) of tenant %s to %s; its last cursor: %s",
            self.last.relayed,
            self._tenant,
            self._stream,
            "none" if cursor is None else cursor.token(),
            extra={
                "tenant": self._tenant,
                "relayed": self.last.relayed,
                "cursor": cursor and cursor.token(),
            },
        )


async def relay(
    container: AsyncContainer,
    settings: Settings,
    tenant: TenantId,
    stopping: anyio.Event,
    *,
    every_s: float = PROGRESS_EVERY_S,
    page: int = 500,
) -> RelayProgress:
    """Relay ``tenant``'s feed until ``stopping`` (or the connection ends: then it raises)."""
    feed = (await container.get(LiveFeed)).of(tenant)
    async with nats_sink(settings.nats, tenant) as sink:
        use_case = RelayChanges(
            read=feed.read,
            sink=sink,
            clock=await container.get(Clock),
            retention=await container.get(FeedRetention),
            poll_s=settings.changes.poll_ms / 1000,
            page=page,
        )
        progress = ProgressLog(stream_names(settings.nats, tenant)[0], tenant, every_s)
        try:
            return await use_case.execute(stopping, progress)
        finally:
            progress.log()


async def _relay_until_stopped(
    container: AsyncContainer, settings: Settings, tenant: TenantId, stopping: anyio.Event
) -> None:
    while not stopping.is_set():
        try:
            await relay(container, settings, tenant, stopping)
        except ChangeSinkUnavailableError as exc:
            logger.warning(
                "NATS relay of tenant %s: %s; trying again in %.0f s", tenant, exc, RETRY_S
            )
        except Exception:  # a dropped connection, a timeout: the next run resumes
            logger.exception(
                "NATS relay of tenant %s failed; trying again in %.0f s", tenant, RETRY_S
            )
        await wait_or_stop(stopping, RETRY_S)


@asynccontextmanager
async def nats_relay(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """While the app runs: a relay per tenant, side by side, when ``NATS_URL`` is set."""
    if settings.nats.url is None:
        yield
        return

    async def run(stopping: anyio.Event) -> None:
        async with anyio.create_task_group() as group:
            for tenant in settings.access.tenants:
                group.start_soon(_relay_until_stopped, container, settings, tenant, stopping)

    async with background("NATS relay", run):
        yield
