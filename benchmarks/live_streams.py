"""Server-sent event readers and a probe writer for the live benchmark.

A reader keeps one ``/changes/stream`` open and notes when each change arrives; the
probe writer creates evaluations at a steady rate on another replica and notes when
each create was answered. Arrival minus answer is the lag a watcher sees.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import msgspec

from benchmarks.deployment import BenchConfig
from benchmarks.measurement import Measurement
from benchmarks.wrk_load import run_wrk

PROBE_PREFIX = "live-probe-"


class _Change(msgspec.Struct):
    kind: str
    evaluation_id: str


_DECODE = msgspec.json.Decoder(_Change)


@dataclass
class StreamReader:
    """One open stream; ``arrivals`` maps a probe's id to when its ``created`` arrived."""

    arrivals: dict[str, float] = field(default_factory=dict)
    changes: int = 0
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self, client: httpx.AsyncClient, path: str) -> None:
        async with client.stream("GET", path) as response:
            response.raise_for_status()
            self.opened.set()
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                change = _DECODE.decode(line[5:])
                self.changes += 1
                if change.kind == "created" and change.evaluation_id.startswith(PROBE_PREFIX):
                    self.arrivals.setdefault(change.evaluation_id, time.monotonic())


@dataclass
class ProbeWriter:
    """Creates ``live-probe-<n>`` every ``interval_s``; notes send and answer times."""

    interval_s: float
    sent: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)

    async def run(self, client: httpx.AsyncClient, seconds: float, tag: str) -> None:
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            evaluation_id = f"{PROBE_PREFIX}{tag}-{n}"
            n += 1
            self.sent[evaluation_id] = time.monotonic()
            response = await client.post(
                "/evaluations", json={"id": evaluation_id, "code": "print(1)"}
            )
            if response.status_code == 200:
                self.answered[evaluation_id] = time.monotonic()
            await asyncio.sleep(self.interval_s)


def lags_ms(
    writer: ProbeWriter, reader: StreamReader, since: Callable[[str], float]
) -> list[float]:
    """Milliseconds from ``since(id)`` to the arrival of each answered probe, sorted."""
    return sorted(
        (reader.arrivals[key] - since(key)) * 1000
        for key in writer.answered
        if key in reader.arrivals
    )


async def open_readers(
    client: httpx.AsyncClient, path: str, count: int
) -> tuple[list[StreamReader], list["asyncio.Task[None]"]]:
    """``count`` readers of ``path``, each with its stream open when this returns."""
    readers = [StreamReader() for _ in range(count)]
    tasks = [asyncio.create_task(reader.read(client, path)) for reader in readers]
    for reader, task in zip(readers, tasks, strict=True):
        opened = asyncio.create_task(reader.opened.wait())
        await asyncio.wait({opened, task}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            opened.cancel()
            task.result()  # raises what failed the stream
    return readers, tasks


async def close_readers(tasks: list["asyncio.Task[None]"]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def stream_client(base: str) -> httpx.AsyncClient:
    """A client without a connection cap (a thousand streams at once) or a read timeout."""
    return httpx.AsyncClient(
        base_url=base,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
        timeout=httpx.Timeout(30.0, read=None),
    )


def create_load(config: BenchConfig, base: str, tag: str) -> "asyncio.Task[Measurement]":
    """wrk's create scenario against ``base`` for the run's duration, started at once."""
    return asyncio.create_task(
        run_wrk(
            "create",
            base,
            "create.lua",
            [f"{tag}-{time.time_ns()}-"],
            duration_s=config.duration_s,
            connections=config.connections,
            threads=config.threads,
        )
    )
