"""``python -m benchmarks.nats_lag``: lag from a commit to a JetStream consumer, under create load.

The service runs as deployed (PostgreSQL + Redis, ``WORKERS``) with one
``storage-service relay`` process beside it, publishing to a stream of its own on
``BENCH_NATS_URL`` (nats://127.0.0.1:4222). wrk drives creates for ``BENCH_DURATION``
seconds while a probe create is sent every 50 ms; a JetStream consumer (ordered, from
the stream's new messages) notes when each probe's ``created`` arrives. The lag is that
arrival minus the service's answer to the probe (the commit came before the answer),
and minus the probe's send (an upper bound). Prints a markdown section.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import httpx
import msgspec
import nats
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from benchmarks.deployment import BenchConfig, Deployment, deployment
from benchmarks.live_streams import (
    PROBE_PREFIX,
    ProbeWriter,
    StreamReader,
    create_load,
    lags_ms,
)
from benchmarks.measurement import percentile

NATS_URL = os.environ.get("BENCH_NATS_URL", "nats://127.0.0.1:4222")
PROBE_INTERVAL_S = 0.05


class _Change(msgspec.Struct):
    evaluation_id: str


def _start_relay(env: dict[str, str], log_path: Path) -> "subprocess.Popen[bytes]":
    command = [str(Path(sys.executable).with_name("storage-service")), "relay", "--every", "5"]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603


@asynccontextmanager
async def relay_process(deployed: Deployment, stream: str, subject: str) -> AsyncIterator[None]:
    """``storage-service relay`` on the deployment's database, stopped by SIGTERM after."""
    env = {**os.environ, **deployed.env}
    env.update(NATS_URL=NATS_URL, NATS_STREAM=stream, NATS_SUBJECT=subject)
    process = _start_relay(env, deployed.workdir / "relay.log")
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 30)


async def _consume(
    js: nats.js.JetStreamContext, stream: str, subject: str, into: StreamReader
) -> None:
    """Note each probe's arrival through a JetStream consumer, until cancelled."""
    while True:
        try:
            await js.stream_info(stream)
            break
        except NotFoundError:  # the relay has not created it yet
            await asyncio.sleep(0.1)
    subscription = await js.subscribe(
        f"{subject}.created",
        stream=stream,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
    )
    into.opened.set()
    async for message in subscription.messages:
        evaluation_id = msgspec.json.decode(message.data, type=_Change).evaluation_id
        into.changes += 1
        if evaluation_id.startswith(PROBE_PREFIX):
            into.arrivals.setdefault(evaluation_id, time.monotonic())


def _row(label: str, lags: list[float]) -> str:
    if not lags:
        return f"| {label} | - | - | - |"
    p50, p99 = percentile(lags, 50), percentile(lags, 99)
    return f"| {label} | {p50:.0f} ms | {p99:.0f} ms | {lags[-1]:.0f} ms |"


async def run(config: BenchConfig) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    stream, subject = f"BENCH_{tag.upper()}", f"bench.{tag}.changes"
    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    reader, writer = StreamReader(), ProbeWriter(interval_s=PROBE_INTERVAL_S)
    try:
        async with deployment(config, prefix="bench_nats") as deployed:
            a = deployed.service.url
            async with relay_process(deployed, stream, subject):
                consumer = asyncio.create_task(_consume(js, stream, subject, reader))
                await asyncio.wait_for(reader.opened.wait(), 60)
                load = create_load(config, a, "nats-load")
                async with httpx.AsyncClient(base_url=a, timeout=30) as probe:
                    await writer.run(probe, config.duration_s, "nats")
                created = await load
                for _ in range(600):  # up to 30 s for the last probes to arrive
                    if set(writer.answered) <= set(reader.arrivals):
                        break
                    await asyncio.sleep(0.05)
                consumer.cancel()
    finally:
        with suppress(NotFoundError):
            await js.delete_stream(stream)
        await client.close()
    missed = len(set(writer.answered) - set(reader.arrivals))
    return [
        f"- create at {created.rate:,.0f} req/s (p50 {created.p50_ms:.1f} ms, p99 "
        f"{created.p99_ms:.1f} ms, {created.errors} errors), WORKERS={config.workers}, "
        f"{os.cpu_count()} cores, wrk {config.connections} connections for "
        f"{config.duration_s:.0f} s; {len(writer.answered)} probes answered, "
        f"{reader.changes:,} created changes consumed, probes missed: {missed}",
        "",
        "| lag of a probe's change at the JetStream consumer | p50 | p99 | max |",
        "|---|---|---|---|",
        _row("after the service answered", lags_ms(writer, reader, writer.answered.__getitem__)),
        _row("after the probe was sent", lags_ms(writer, reader, writer.sent.__getitem__)),
    ]


def main() -> None:
    print("\n".join(asyncio.run(run(BenchConfig.from_env()))))


if __name__ == "__main__":
    main()
