"""``relay``: publish the change feed to NATS JetStream until stopped."""

import asyncio
import signal

import anyio
import click
from dishka import AsyncContainer

from application.use_cases.relay_changes import RelayProgress
from domain.tenancy import TenantId
from interfaces.cli import CONTEXT_SETTINGS
from interfaces.cli.common import fail, load, run, summary, tenant_option
from interfaces.relay import PROGRESS_EVERY_S
from interfaces.relay import relay as relay_feed


def _stop_on_signal(stopping: anyio.Event) -> None:
    """SIGINT and SIGTERM set ``stopping``: the relay ends after the page it is publishing."""
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stopping.set)


@click.command("relay", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--every",
    "every_s",
    type=click.FloatRange(min=0.1),
    default=PROGRESS_EVERY_S,
    show_default=True,
    help="Seconds between two progress lines (changes relayed, the cursor reached).",
)
@tenant_option
def relay(every_s: float, tenant: TenantId) -> None:
    """Publish one tenant's change feed to NATS JetStream (NATS_URL) until SIGINT or SIGTERM.

    Each change goes to NATS_SUBJECT.<kind> in the stream NATS_STREAM (created when
    missing) with its cursor as Nats-Msg-Id, after the stream's last change: a relay
    restarted, or a second one beside it, skips nothing and stores nothing twice.
    Another tenant than the default (--tenant) has a stream of its own:
    NATS_STREAM_<tenant> over NATS_SUBJECT_<tenant>.<kind>. `storage-service serve`
    does the same for every tenant in the background when NATS_URL is set.
    Exits 1 when NATS does not answer or the connection is lost (start it again: it
    resumes from what JetStream acknowledged).

    \b
    Examples:
      NATS_URL=nats://127.0.0.1:4222 storage-service relay
      NATS_URL=nats://a:4222,nats://b:4222 NATS_STREAM=EVALS storage-service relay --every 60
      NATS_URL=nats://127.0.0.1:4222 storage-service relay --tenant acme
    """
    settings = load()
    if settings.nats.url is None:
        fail("set NATS_URL (nats://host:4222) to relay the change feed", 2)

    async def work(container: AsyncContainer) -> RelayProgress:
        stopping = anyio.Event()
        _stop_on_signal(stopping)
        return await relay_feed(container, settings, tenant, stopping, every_s=every_s)

    progress = run(settings, work, tenant)
    cursor = "none" if progress.cursor is None else progress.cursor.token()
    summary(f"{progress.relayed} change(s) relayed; the stream's last cursor: {cursor}")
