"""Failover to the journal: PostgreSQL dies under load, nothing acknowledged is lost.

Each test runs the real service (``storage-service serve``) on a PostgreSQL of its
own (``tests.pg_server``), so stopping the primary with ``pg_ctl -m immediate`` (a
crash, as far as the service can tell) harms nothing else. While the primary is
down every write is fsync'd to the journal under ``FILE_STORAGE_PATH/journal`` and
acknowledged; once it is back the journal is replayed exactly once. The checks are
made directly in PostgreSQL (asyncpg), against what the clients were told:

- a: a concurrent load across a 4 s outage: every request answered 2xx, /health
  says ``degraded`` (HTTP 200) with the journal's backlog while it lasts, the
  clients read their own writes during it, and afterwards records, outputs, logs
  (byte for byte, offsets contiguous) and events (each once) are exact;
- b: the service is SIGKILLed while it replays a journal of thousands of writes and
  started again on the same files: the replay resumes and nothing is lost or doubled;
- c: primary down and the journal unwritable: writes get 503 problem+json and leave
  nothing behind;
- d: ``storage-service replay --json`` drains the journal a killed service left.

Every evaluation is written by one client thread, in order, so the expected final
state of each is well defined; the load is parallel across evaluations.
"""

import asyncio
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.pg_server import PgServer, wait_until
from tests.services import serve_subprocess, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

LARGE_FILE_THRESHOLD = 102_400  # the service's default: larger outputs become files
PROBE_INTERVAL_S = "0.2"
DRAIN_TIMEOUT_S = 45.0
HTTP_TIMEOUT_S = 20.0
ACKNOWLEDGED = frozenset({200, 201, 204})
ACCEPTED = 202
ACCEPTED_KEYS = frozenset({"evaluation_id", "journal_entry", "detail"})
CELERY_STATUS = {"STARTED": "running", "SUCCESS": "completed"}

# Settings of the environment that would change what these tests observe.
_FOREIGN_SETTINGS = (
    "REDIS_URL",
    "REDIS_CLUSTER",
    "REDIS_KEY_PREFIX",
    "API_KEYS",
    "API_KEYS_FILE",
    "STORAGE_BACKEND",
    "BLOB_BACKEND",
    "S3_BUCKET",
    "RETENTION_DAYS",
    "LARGE_FILE_THRESHOLD",
    "COMPRESSION_THRESHOLD",
    "PREVIEW_SIZE",
    "WORKERS",
)


def service_env(pg: PgServer, files: Path, *, caching: bool = True) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in _FOREIGN_SETTINGS}
    env.update(
        {
            "DATABASE_URL": pg.url,
            "FILE_STORAGE_PATH": str(files),
            "FALLBACK_BACKEND": "file",
            "FAILOVER_PROBE_INTERVAL_S": PROBE_INTERVAL_S,
            "DB_CONNECT_TIMEOUT_S": "1",
            "CACHE_WARM_ON_START": "false",
            "ENABLE_CACHING": "true" if caching else "false",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "console",
        }
    )
    return env


def tail(path: Path, size: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return f"({path} is missing)"


# --- what the clients were told -------------------------------------------------------


@dataclass
class Expected:
    """The state of one evaluation that follows from its acknowledged writes, in order."""

    code: str
    status: str
    metadata: dict[str, Any]
    executor_id: str | None = None
    celery_task_id: str | None = None
    output: str | None = None
    log: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)  # sent with an event_id
    anonymous_events: list[str] = field(default_factory=list)  # messages of those without
    deleted: bool = False

    def rows(self) -> int:
        """Rows of the primary this evaluation accounts for (record, log chunks, events)."""
        return 1 + len(self.log) + len(self.event_ids) + len(self.anonymous_events)


class Ledger:
    """Every acknowledged write, per evaluation; every answer that was not one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: dict[str, Expected] = {}
        self.failures: list[str] = []
        self.answers: Counter[int] = Counter()

    def add(self, evaluation_id: str, expected: Expected) -> None:
        with self._lock:
            if evaluation_id in self.records:
                self.failures.append(f"{evaluation_id} was created twice")
            self.records[evaluation_id] = expected

    def fail(self, message: str) -> None:
        with self._lock:
            self.failures.append(message)

    def answered(self, status: int) -> None:
        with self._lock:
            self.answers[status] += 1

    def rows(self) -> int:
        with self._lock:
            return sum(expected.rows() for expected in self.records.values())

    def assert_no_failures(self, log: Path) -> None:
        assert not self.failures, (
            f"{len(self.failures)} requests failed (not 2xx, no answer or a stale read):\n"
            + "\n".join(self.failures[:20])
            + f"\n--- server log ---\n{tail(log)}"
        )


class Client:
    """One client thread's connection; any answer but a 2xx is recorded as a failure."""

    def __init__(self, base: str, ledger: Ledger) -> None:
        self.http = httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S)
        self.ledger = ledger

    def close(self) -> None:
        self.http.close()

    def write(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response | None:
        """The response when the write was acknowledged (2xx), else ``None``."""
        try:
            response = self.http.request(method, path, json=body, content=content, headers=headers)
        except httpx.HTTPError as exc:
            self.ledger.fail(f"{method} {path}: {exc!r}")
            return None
        self.ledger.answered(response.status_code)
        if response.status_code == ACCEPTED:
            return response if self._accepted_properly(method, path, response) else None
        if response.status_code not in ACKNOWLEDGED:
            self.ledger.fail(f"{method} {path}: {response.status_code} {response.text[:500]}")
            return None
        return response

    def _accepted_properly(self, method: str, path: str, response: httpx.Response) -> bool:
        """A 202 names the evaluation and the journal entry that holds the write."""
        try:
            body = response.json()
        except ValueError:
            body = None
        evaluation_id = path.split("/")[2] if path.count("/") >= 2 else None
        if (
            not isinstance(body, dict)
            or not body.keys() >= ACCEPTED_KEYS
            or body["evaluation_id"] != evaluation_id
            or not body["journal_entry"]
        ):
            self.ledger.fail(f"{method} {path}: 202 with a bad body {response.text[:500]}")
            return False
        return True

    # Each write below changes ``expected`` only once it is acknowledged.

    def create(self, evaluation_id: str | None, code: str, metadata: dict[str, Any]) -> str | None:
        body: dict[str, Any] = {"code": code, "status": "queued", "metadata": metadata}
        if evaluation_id is not None:
            body["id"] = evaluation_id
        response = self.write("POST", "/evaluations", body)
        if response is None:
            return None
        record = response.json() if response.status_code == 200 else None
        if not isinstance(record, dict) or not record.get("id"):
            self.ledger.fail(f"POST /evaluations: {response.status_code} {response.text[:300]}")
            return None
        if evaluation_id is not None and record["id"] != evaluation_id:
            self.ledger.fail(f"POST /evaluations {evaluation_id} answered id {record['id']}")
            return None
        created = str(record["id"])
        self.ledger.add(created, Expected(code=code, status="queued", metadata=dict(metadata)))
        return created

    def update(self, expected: Expected, evaluation_id: str, changes: dict[str, Any]) -> None:
        if self.write("PUT", f"/evaluations/{evaluation_id}", changes) is None:
            return
        for name in ("status", "executor_id", "celery_task_id", "output"):
            if name in changes:
                setattr(expected, name, changes[name])
        expected.metadata.update(changes.get("metadata", {}))

    def celery(self, expected: Expected, evaluation_id: str, state: str, task_id: str) -> None:
        response = self.write(
            "POST",
            f"/evaluations/{evaluation_id}/celery-update",
            {"task_state": state, "celery_task_id": task_id},
        )
        if response is None:
            return
        if response.status_code == 200 and response.json().get("applied") is False:
            self.ledger.fail(f"celery {state} on {evaluation_id} refused: {response.text[:300]}")
            return
        expected.status = CELERY_STATUS[state]
        expected.celery_task_id = task_id

    def upload_output(self, expected: Expected, evaluation_id: str, text: str) -> None:
        response = self.write(
            "PUT",
            f"/evaluations/{evaluation_id}/output",
            content=text.encode(),
            headers={"Content-Type": "text/plain"},
        )
        if response is not None:
            expected.output = text

    def append_log(self, expected: Expected, evaluation_id: str, content: str) -> None:
        response = self.write("POST", f"/evaluations/{evaluation_id}/logs", {"content": content})
        if response is not None:
            expected.log.append(content)

    def event(
        self, expected: Expected, evaluation_id: str, event_id: str | None, message: str
    ) -> None:
        body: dict[str, Any] = {
            "type": "progress",
            "message": message,
            "metadata": {"message_bytes": len(message.encode())},
        }
        if event_id is not None:
            body["event_id"] = event_id
        if self.write("POST", f"/evaluations/{evaluation_id}/events", body) is None:
            return
        if event_id is None:
            expected.anonymous_events.append(message)
        elif event_id not in expected.event_ids:  # a redelivery is stored once
            expected.event_ids.append(event_id)

    def delete(self, expected: Expected, evaluation_id: str) -> None:
        if self.write("DELETE", f"/evaluations/{evaluation_id}") is not None:
            expected.deleted = True

    def read_back(self, expected: Expected, evaluation_id: str) -> None:
        """GET answers the state with this client's own writes, whatever the primary's state."""
        try:
            response = self.http.get(f"/evaluations/{evaluation_id}")
        except httpx.HTTPError as exc:
            self.ledger.fail(f"GET /evaluations/{evaluation_id}: {exc!r}")
            return
        if response.status_code != 200:
            self.ledger.fail(
                f"GET /evaluations/{evaluation_id}: {response.status_code} {response.text[:300]}"
            )
            return
        record = response.json()
        wanted: dict[str, Any] = {
            "code": expected.code,
            "status": expected.status,
            "metadata": expected.metadata,
            "executor_id": expected.executor_id,
            "celery_task_id": expected.celery_task_id,
        }
        if expected.output is not None and len(expected.output.encode()) <= LARGE_FILE_THRESHOLD:
            wanted["output"] = expected.output
        seen = {name: record.get(name) for name in wanted}
        if seen != wanted:
            self.ledger.fail(f"GET /evaluations/{evaluation_id} is stale: {seen} != {wanted}")


def output_text(evaluation_id: str, tag: str, big: bool) -> str:
    """A deterministic output; a big one (> LARGE_FILE_THRESHOLD bytes) goes to a file."""
    lines = 6_000 if big else 3
    text = "".join(f"{tag} {evaluation_id} line {n} ✓\n" for n in range(lines))
    assert (len(text.encode()) > LARGE_FILE_THRESHOLD) == big
    return text


# --- what the primary holds -----------------------------------------------------------


@dataclass
class Primary:
    records: dict[str, dict[str, Any]]
    chunks: dict[str, list[tuple[int, str]]]  # per evaluation, by offset
    events: dict[str, list[tuple[str, str | None]]]  # (event_id, message)


async def _connect(dsn: str, timeout_s: float = 20) -> asyncpg.Connection:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await asyncpg.connect(dsn, timeout=5)
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _read_primary(dsn: str) -> Primary:
    connection = await _connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT id, code, status, metadata::text AS metadata, executor_id, celery_task_id,"
            " output, output_location, output_size, deleted_at IS NOT NULL AS deleted, log_size"
            " FROM evaluations"
        )
        chunks = await connection.fetch(
            "SELECT evaluation_id, start_offset, content FROM log_chunks"
            " ORDER BY evaluation_id, start_offset"
        )
        events = await connection.fetch(
            "SELECT evaluation_id, event_id, message FROM evaluation_events"
            " ORDER BY evaluation_id, id"
        )
    finally:
        await connection.close()
    primary = Primary(records={row["id"]: dict(row) for row in rows}, chunks={}, events={})
    for chunk in chunks:
        primary.chunks.setdefault(chunk["evaluation_id"], []).append(
            (int(chunk["start_offset"]), chunk["content"])
        )
    for event in events:
        primary.events.setdefault(event["evaluation_id"], []).append(
            (event["event_id"], event["message"])
        )
    return primary


COUNT_ROWS = (
    "SELECT (SELECT count(*) FROM evaluations) + (SELECT count(*) FROM log_chunks)"
    " + (SELECT count(*) FROM evaluation_events)"
)


async def _count_rows(dsn: str) -> int:
    connection = await _connect(dsn)
    try:
        return int(await connection.fetchval(COUNT_ROWS))
    finally:
        await connection.close()


def _differences(evaluation_id: str, expected: Expected, primary: Primary) -> list[str]:
    row = primary.records[evaluation_id]
    problems: list[str] = []

    def differ(what: str, stored: Any, wanted: Any) -> None:
        if stored != wanted:
            problems.append(f"{evaluation_id}: {what} is {stored!r:.200}, expected {wanted!r:.200}")

    for name in ("code", "status", "executor_id", "celery_task_id", "deleted"):
        differ(name, row[name], getattr(expected, name))
    differ("metadata", json.loads(row["metadata"]), expected.metadata)
    if expected.output is None:
        differ("output_location", row["output_location"], None)
    else:
        size = len(expected.output.encode())
        differ("output_size", row["output_size"], size)
        location = "file" if size > LARGE_FILE_THRESHOLD else "inline"
        differ("output_location", row["output_location"], location)
        if location == "inline":
            differ("output", row["output"], expected.output)

    # The log: chunks end to end (a gap or an overlap is a lost or a doubled append).
    offset, pieces = 0, []
    for start, content in primary.chunks.get(evaluation_id, []):
        if start != offset:
            problems.append(f"{evaluation_id}: a log chunk starts at {start}, not at {offset}")
        offset = start + len(content.encode())
        pieces.append(content)
    log, wanted_log = "".join(pieces), "".join(expected.log)
    if log != wanted_log:
        at = next((i for i, (a, b) in enumerate(zip(log, wanted_log, strict=False)) if a != b), 0)
        problems.append(
            f"{evaluation_id}: log of {len(log)} chars, expected {len(wanted_log)}"
            f" (first difference near char {at}: {log[at : at + 60]!r}"
            f" vs {wanted_log[at : at + 60]!r})"
        )
    differ("log_size", row["log_size"], len(wanted_log.encode()))

    # Events: each event_id once; each event sent without one exactly once too.
    stored = primary.events.get(evaluation_id, [])
    explicit = set(expected.event_ids)
    differ(
        "events by event_id",
        Counter(event_id for event_id, _ in stored if event_id in explicit),
        Counter(expected.event_ids),
    )
    differ(
        "events sent without an event_id",
        Counter(message for event_id, message in stored if event_id not in explicit),
        Counter(expected.anonymous_events),
    )
    return problems


def assert_primary_holds(pg: PgServer, ledger: Ledger) -> None:
    """Every acknowledged write is in PostgreSQL exactly once, and nothing else is."""
    primary = asyncio.run(_read_primary(pg.dsn))
    problems: list[str] = []
    missing = sorted(ledger.records.keys() - primary.records.keys())
    unexpected = sorted(primary.records.keys() - ledger.records.keys())
    if missing:
        problems.append(f"{len(missing)} acknowledged evaluations are missing: {missing[:10]}")
    if unexpected:
        problems.append(f"{len(unexpected)} evaluations nobody was told of: {unexpected[:10]}")
    for evaluation_id in sorted(ledger.records.keys() & primary.records.keys()):
        problems += _differences(evaluation_id, ledger.records[evaluation_id], primary)
    for evaluation_id in sorted(
        (primary.chunks.keys() | primary.events.keys()) - ledger.records.keys()
    ):
        problems.append(f"{evaluation_id}: logs or events of an unknown evaluation")
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:30])


def assert_outputs_served(base: str, ledger: Ledger) -> None:
    """GET …/output (which streams the blob of a file-stored output) answers the text."""
    with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as http:
        for evaluation_id, expected in ledger.records.items():
            if expected.deleted or expected.output is None:
                continue
            response = http.get(f"/evaluations/{evaluation_id}/output")
            assert response.status_code == 200, (evaluation_id, response.text[:300])
            assert response.text == expected.output, (
                f"{evaluation_id}: output of {len(response.text)} chars, "
                f"expected {len(expected.output)}"
            )


# --- /health --------------------------------------------------------------------------


def health(http: httpx.Client) -> tuple[int, dict[str, Any]]:
    response = http.get("/health")
    body = response.json()
    assert isinstance(body, dict), response.text
    return response.status_code, body


def wait_drained(base: str, log: Path, timeout_s: float = DRAIN_TIMEOUT_S) -> dict[str, Any]:
    """Wait until the journal is replayed (``pending_replay == 0``) and the primary serves."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    with httpx.Client(base_url=base, timeout=10) as http:
        while time.monotonic() < deadline:
            try:
                status, body = health(http)
                last = (status, body)
                if (
                    status == 200
                    and body.get("pending_replay") == 0
                    and body.get("status") == "healthy"
                ):
                    return body
            except (httpx.HTTPError, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.1)
    pytest.fail(
        f"the journal was not drained within {timeout_s} s; last /health: {last}\n"
        f"--- server log ---\n{tail(log)}"
    )


@dataclass
class HealthSample:
    started: float
    ended: float
    status: int | None
    body: dict[str, Any] | None
    error: str | None = None


def metric_values(base: str) -> dict[str, float]:
    """The unlabelled failover samples of ``GET /metrics`` (one process: WORKERS=1)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.startswith("crucible_storage_failover_"):
            values[name] = float(value)
    return values


class HealthWatch(threading.Thread):
    """Polls /health every 0.1 s and keeps every answer with when it was asked."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.samples: list[HealthSample] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as http:
            while not self.done.is_set():
                started = time.monotonic()
                try:
                    status, body = health(http)
                    sample = HealthSample(started, time.monotonic(), status, body)
                except (httpx.HTTPError, ValueError, AssertionError) as exc:
                    sample = HealthSample(started, time.monotonic(), None, None, repr(exc))
                self.samples.append(sample)
                self.done.wait(0.1)


def assert_health_during_outage(
    samples: list[HealthSample], outage_start: float, outage_end: float
) -> None:
    during = [s for s in samples if s.started >= outage_start and s.ended <= outage_end]
    assert during, "no /health answer during the outage"
    for sample in during:
        assert sample.status == 200, sample
        assert sample.body is not None and sample.body["status"] == "degraded", sample
    assert any((s.body or {}).get("pending_replay", 0) > 0 for s in during), (
        "the journal never showed a backlog during the outage",
        during[-3:],
    )
    for sample in samples:
        if sample.body is None:
            continue
        pending = sample.body.get("pending_replay")
        oldest = sample.body.get("oldest_pending_age_s", "missing")
        assert isinstance(pending, int), sample
        if pending > 0:
            assert sample.status == 200, sample
            assert sample.body["status"] == "degraded", sample
            assert isinstance(oldest, int | float) and oldest >= 0, sample
        else:
            assert oldest is None or oldest == 0, sample


# --- a: concurrent load across an outage ------------------------------------------------

LOAD_THREADS = 6


def lifecycle(client: Client, thread: int, n: int) -> None:
    """One evaluation from creation to the end, every write sequential in this thread."""
    evaluation_id = client.create(
        None if n % 4 == 3 else f"fo-{thread}-{n}",  # every fourth id is generated
        f"print({thread}, {n})  # ✓",
        {"thread": thread, "n": n},
    )
    if evaluation_id is None:
        return
    expected = client.ledger.records[evaluation_id]
    client.update(
        expected,
        evaluation_id,
        {"status": "provisioning", "executor_id": f"exec-{thread}", "metadata": {"phase": 1}},
    )
    client.celery(expected, evaluation_id, "STARTED", f"task-{evaluation_id}")
    for step in range(3):
        client.append_log(expected, evaluation_id, f"{evaluation_id} step {step} ✓\n" * (step + 1))
        client.event(expected, evaluation_id, f"{evaluation_id}-e{step}", f"step {step}")
    client.event(expected, evaluation_id, None, f"{evaluation_id} without an id")
    client.update(
        expected,
        evaluation_id,
        {"output": output_text(evaluation_id, "put", n % 3 == 0), "metadata": {"progress": 50}},
    )
    client.event(expected, evaluation_id, f"{evaluation_id}-e1", "step 1")  # redelivered
    client.upload_output(expected, evaluation_id, output_text(evaluation_id, "raw", n % 3 == 1))
    client.append_log(expected, evaluation_id, f"{evaluation_id} done\n")
    if n % 2:
        client.celery(expected, evaluation_id, "SUCCESS", f"task-{evaluation_id}")
    else:
        client.update(
            expected,
            evaluation_id,
            {"status": "completed", "runtime_ms": 1000 + n, "metadata": {"progress": 100}},
        )
    client.read_back(expected, evaluation_id)
    if n % 5 == 4:
        client.delete(expected, evaluation_id)


def load_thread(base: str, ledger: Ledger, thread: int, stop: threading.Event) -> None:
    client = Client(base, ledger)
    try:
        n = 0
        while not stop.is_set():
            lifecycle(client, thread, n)
            n += 1
    except Exception:
        ledger.fail(f"client thread {thread} crashed:\n{traceback.format_exc()}")
    finally:
        client.close()


def test_outage_under_concurrent_load_loses_and_doubles_nothing(
    tmp_path: Path, pg: PgServer
) -> None:
    log = tmp_path / "server.log"
    ledger = Ledger()
    with serve_subprocess(service_env(pg, tmp_path / "files"), log) as (base, _):
        watch = HealthWatch(base)
        watch.start()
        stop = threading.Event()
        threads = [
            threading.Thread(target=load_thread, args=(base, ledger, thread, stop), daemon=True)
            for thread in range(LOAD_THREADS)
        ]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)  # records made before the outage, then changed during it
            pg.stop("immediate")
            outage_start = time.monotonic()
            time.sleep(3.5)
            during = metric_values(base)
            time.sleep(0.5)
            outage_end = time.monotonic()
            pg.start()
            time.sleep(1.0)  # writes while the replay runs
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        try:
            assert not any(thread.is_alive() for thread in threads), "a client thread hangs"
            ledger.assert_no_failures(log)
            wait_drained(base, log)
        finally:
            watch.done.set()
            watch.join(timeout=20)
        assert_health_during_outage(watch.samples, outage_start, outage_end)
        assert during["crucible_storage_failover_primary_up"] == 0, during
        assert during["crucible_storage_failover_journaled_writes_total"] > 0, during
        assert during["crucible_storage_failover_pending_entries"] > 0, during
        # The gauges follow the replayer's next round.
        wait_until(lambda: not metric_values(base)["crucible_storage_failover_pending_entries"], 5)
        after = metric_values(base)
        assert after["crucible_storage_failover_primary_up"] == 1, after
        assert after["crucible_storage_failover_pending_entries"] == 0, after
        assert len(ledger.records) >= LOAD_THREADS, ledger.answers
        assert_primary_holds(pg, ledger)
        assert_outputs_served(base, ledger)


# --- b: SIGKILL while replaying -------------------------------------------------------

REPLAY_THREADS = 8
REPLAY_WRITES = 3000  # at most, within REPLAY_OUTAGE_S
REPLAY_OUTAGE_S = 3.0


class Budget:
    def __init__(self, writes: int) -> None:
        self._left = writes
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            self._left -= 1
            return self._left >= 0


def outage_writer(base: str, ledger: Ledger, thread: int, deadline: float, budget: Budget) -> None:
    """Small writes to evaluations this thread owns: one made before the outage, four during."""
    client = Client(base, ledger)
    try:
        owned = [f"kr-pre-{thread}"]
        for j in range(4):
            created = client.create(f"kr-{thread}-{j}", f"code {thread} {j}", {"j": j})
            if created is not None:
                owned.append(created)
        for evaluation_id in owned:
            client.update(
                ledger.records[evaluation_id],
                evaluation_id,
                {"status": "running", "executor_id": f"exec-{thread}"},
            )
        k = 0
        while time.monotonic() < deadline and budget.take():
            evaluation_id = owned[k % len(owned)]
            expected = ledger.records[evaluation_id]
            step = (k // len(owned)) % 5
            if step in (0, 2):
                client.append_log(expected, evaluation_id, f"{evaluation_id} #{k} ✓\n")
            elif step == 1:
                client.event(expected, evaluation_id, f"{evaluation_id}-k{k}", f"k {k}")
            elif step == 3:
                client.update(expected, evaluation_id, {"metadata": {f"m{k % 5}": k}})
            else:
                client.event(expected, evaluation_id, None, f"{evaluation_id} anonymous {k}")
            k += 1
    except Exception:
        ledger.fail(f"writer {thread} crashed:\n{traceback.format_exc()}")
    finally:
        client.close()


async def _kill_once_replay_starts(
    dsn: str, process: "subprocess.Popen[bytes]", baseline: int, log: Path
) -> None:
    """SIGKILL the service as soon as the primary shows its first replayed row."""
    connection = await _connect(dsn)
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    try:
        while int(await connection.fetchval(COUNT_ROWS)) <= baseline:
            if process.poll() is not None:
                pytest.fail(f"the service died before replaying:\n{tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"the replay did not start within {DRAIN_TIMEOUT_S} s:\n{tail(log)}")
            await asyncio.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        await connection.close()


def test_sigkill_during_replay_then_restart_applies_each_write_once(
    tmp_path: Path, pg: PgServer
) -> None:
    # Caching off: writes to the records made before the outage cannot be computed (202).
    env = service_env(pg, tmp_path / "files", caching=False)
    first_log, second_log = tmp_path / "server-1.log", tmp_path / "server-2.log"
    ledger = Ledger()
    process, base = start_server(env, first_log)
    try:
        client = Client(base, ledger)
        for thread in range(REPLAY_THREADS):
            client.create(f"kr-pre-{thread}", f"code {thread}", {"owner": thread})
        client.close()
        ledger.assert_no_failures(first_log)
        baseline = asyncio.run(_count_rows(pg.dsn))
        assert baseline == REPLAY_THREADS

        pg.stop("immediate")
        deadline, budget = time.monotonic() + REPLAY_OUTAGE_S, Budget(REPLAY_WRITES)
        writers = [
            threading.Thread(target=outage_writer, args=(base, ledger, t, deadline, budget))
            for t in range(REPLAY_THREADS)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=60)
        ledger.assert_no_failures(first_log)
        assert ledger.answers[ACCEPTED] > 0, (
            "with the cache off, writes to records made before the outage are answered 202",
            ledger.answers,
        )
        journaled = ledger.rows() - baseline

        pg.start()
        asyncio.run(_kill_once_replay_starts(pg.dsn, process, baseline, first_log))
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)
    replayed = asyncio.run(_count_rows(pg.dsn)) - baseline
    assert 0 < replayed < journaled, (
        f"the kill should interrupt the replay: {replayed} of {journaled} rows were in"
    )

    with serve_subprocess(env, second_log) as (base, _):
        wait_drained(base, second_log)
        assert_primary_holds(pg, ledger)


# --- c: primary down and journal unwritable ---------------------------------------------


class JournalBreaker:
    """Makes the journal directory refuse writes, even to root.

    Where mounting is allowed, the directory is a tiny tmpfs (mounted before the
    service starts) that gets filled to its last block and inode: every write fails
    with ENOSPC, as on a full disk, whatever file the service has open. Elsewhere
    the directory is replaced by a regular file of the same name.
    """

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.mounted = False
        self.fillers: list[Path] = []

    def prepare(self) -> None:
        self.journal.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 or shutil.which("mount") is None:
            return
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k,nr_inodes=64", "tmpfs", str(self.journal)],
            capture_output=True,
            check=False,
            timeout=10,
        )
        self.mounted = result.returncode == 0

    def break_it(self) -> None:
        if not self.mounted:
            shutil.rmtree(self.journal, ignore_errors=True)
            self.journal.write_text("not a directory\n")
            return
        filler = self.journal / ".filler"
        self.fillers.append(filler)
        with filler.open("ab", buffering=0) as out:
            for size in (65_536, 4_096, 1):
                try:
                    while True:
                        out.write(b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        for n in range(10_000):  # then every inode
            path = self.journal / f".filler-{n}"
            try:
                path.touch()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
            self.fillers.append(path)

    def repair(self) -> None:
        """A journal on the ordinary disk again (the tmpfs emptied and unmounted)."""
        if not self.mounted:
            self.journal.unlink()
            self.journal.mkdir()
            return
        for path in self.fillers:
            path.unlink(missing_ok=True)
        self.fillers.clear()
        self.release()

    def release(self) -> None:
        if self.mounted:
            subprocess.run(
                ["umount", "-l", str(self.journal)], capture_output=True, check=False, timeout=10
            )
            self.mounted = False


def assert_refused(response: httpx.Response, what: str) -> None:
    assert response.status_code == 503, (what, response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json"), (
        what,
        response.headers,
    )
    assert isinstance(response.json(), dict), response.text


def test_unwritable_journal_refuses_writes_and_acknowledges_nothing(
    tmp_path: Path, pg: PgServer
) -> None:
    files = tmp_path / "files"
    log = tmp_path / "server.log"
    breaker = JournalBreaker(files / "journal")
    breaker.prepare()
    try:
        with (
            serve_subprocess(service_env(pg, files), log) as (base, _),
            httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as http,
        ):
            made = http.post("/evaluations", json={"id": "nj-before", "code": "x"})
            assert made.status_code == 200, made.text

            pg.stop("immediate")
            breaker.break_it()
            assert_refused(
                http.post("/evaluations", json={"id": "nj-1", "code": "lost"}), "a create"
            )
            assert_refused(http.post("/evaluations", json={"code": "no id"}), "a create without id")
            assert_refused(
                http.post("/evaluations/nj-before/logs", json={"content": "lost\n"}),
                "a log append",
            )

            breaker.repair()
            pg.start()
            drained = wait_drained(base, log)
            assert drained["pending_replay"] == 0
            assert http.get("/evaluations/nj-1").status_code == 404
            logs = http.get("/evaluations/nj-before/logs")
            assert logs.status_code == 200 and "lost" not in logs.text, logs.text
    finally:
        breaker.release()
    primary = asyncio.run(_read_primary(pg.dsn))
    assert sorted(primary.records) == ["nj-before"], sorted(primary.records)
    assert primary.records["nj-before"]["log_size"] == 0
    assert primary.chunks == {}


# --- d: the replay command ------------------------------------------------------------


def run_replay(env: dict[str, str]) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "interfaces.cli", "replay", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (
        f"replay exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
    try:
        return json.loads(result.stdout)
    except ValueError:
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        assert lines, f"replay --json printed nothing:\n{result.stderr}"
        return json.loads(lines[-1])


def test_replay_command_drains_the_journal_of_a_killed_service(
    tmp_path: Path, pg: PgServer
) -> None:
    env = service_env(pg, tmp_path / "files")
    first_log, second_log = tmp_path / "server-1.log", tmp_path / "server-2.log"
    ledger = Ledger()
    process, base = start_server(env, first_log)
    try:
        client = Client(base, ledger)
        before = [client.create(f"cli-pre-{n}", f"pre {n}", {"n": n}) for n in range(3)]
        ledger.assert_no_failures(first_log)

        pg.stop("immediate")
        # A conditional write cannot be checked against the primary: refused, not journaled.
        refused = client.http.put(
            "/evaluations/cli-pre-0",
            json={"executor_id": "never-stored"},
            headers={"If-Match": '"1"'},
        )
        assert_refused(refused, "a write with If-Match")
        for evaluation_id in before:
            if evaluation_id is None:
                continue  # reported by assert_no_failures below
            expected = ledger.records[evaluation_id]
            client.update(expected, evaluation_id, {"status": "running", "executor_id": "x-1"})
            client.append_log(expected, evaluation_id, f"{evaluation_id} during the outage\n")
            client.event(expected, evaluation_id, f"{evaluation_id}-outage", "outage")
        during = [client.create(f"cli-new-{n}", f"new {n}", {"n": n}) for n in range(4)]
        during.append(client.create(None, "generated id", {"generated": True}))
        for n, evaluation_id in enumerate(during):
            if evaluation_id is None:
                continue
            expected = ledger.records[evaluation_id]
            client.update(expected, evaluation_id, {"status": "provisioning", "metadata": {"p": n}})
            client.celery(expected, evaluation_id, "STARTED", f"task-{n}")
            client.append_log(expected, evaluation_id, "first ✓\n")
            client.append_log(expected, evaluation_id, "second\n")
            client.event(expected, evaluation_id, f"{evaluation_id}-started", "started")
            client.event(expected, evaluation_id, None, f"{evaluation_id} anonymous")
            client.upload_output(expected, evaluation_id, output_text(evaluation_id, "cli", n == 0))
            client.read_back(expected, evaluation_id)
        if "cli-new-1" in ledger.records:
            client.delete(ledger.records["cli-new-1"], "cli-new-1")
        client.close()
        ledger.assert_no_failures(first_log)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)
    assert any((tmp_path / "files" / "journal").rglob("*")), "the killed service left no journal"

    pg.start()
    report = run_replay(env)
    assert isinstance(report, dict | list), report
    assert_primary_holds(pg, ledger)
    run_replay(env)  # again: nothing left, nothing applied twice
    assert_primary_holds(pg, ledger)

    with serve_subprocess(env, second_log) as (base, _), httpx.Client(base_url=base) as http:
        status, body = health(http)
        assert (status, body["pending_replay"]) == (200, 0), body
        assert_outputs_served(base, ledger)
