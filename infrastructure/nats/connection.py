"""One NATS connection for one run of the relay, and JetStream on it.

The client does not reconnect by itself: a dropped connection ends the relay's run, and
the next run starts from what JetStream acknowledged, read again. A server that does
not answer is an error at once, not a wait that looks like a hang.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from nats.js.client import JetStreamContext

from application.ports.change_sink import ChangeSinkUnavailableError

logger = logging.getLogger(__name__)


async def _log_error(error: Exception) -> None:
    logger.warning("NATS: %r", error)


@asynccontextmanager
async def jetstream(
    servers: str, *, name: str, timeout_s: float = 5.0
) -> AsyncIterator[JetStreamContext]:
    """JetStream on ``servers`` (comma-separated URLs), each request bounded by ``timeout_s``."""
    urls = [url.strip() for url in servers.split(",") if url.strip()]
    try:
        client = await nats.connect(
            urls,
            name=name,
            connect_timeout=timeout_s,
            allow_reconnect=False,
            max_reconnect_attempts=1,  # one attempt per server
            reconnect_time_wait=0.1,
            error_cb=_log_error,
        )
    except (OSError, nats.errors.Error) as exc:
        detail = str(exc) or type(exc).__name__
        raise ChangeSinkUnavailableError(f"no NATS server answers at {servers} ({detail})") from exc
    try:
        yield client.jetstream(timeout=timeout_s)
    finally:
        await client.close()
