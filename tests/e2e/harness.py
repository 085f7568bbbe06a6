"""The harness of the failover tests: the service's environment, the clients' ledger
of what was acknowledged, and the checks against what PostgreSQL holds afterwards.

``tests/e2e/test_failover.py`` (one service process) and
``tests/e2e/test_replicas_failover.py`` (two sharing one journal) drive the same
:class:`Client`: every write is recorded in a :class:`Ledger` once it is
acknowledged, every other answer as a failure, and :func:`assert_primary_holds`
compares the ledger with PostgreSQL row by row. ``tests/e2e/test_replicas.py``
starts its two replicas with :func:`replicas` too.
"""

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.pg_server import PgServer
from tests.services import start_server

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


# --- the service's processes ---------------------------------------------------------


@contextmanager
def replicas(
    envs: tuple[dict[str, str], dict[str, str]], logs: tuple[Path, Path]
) -> Iterator[tuple[str, str]]:
    """Two service processes, one per environment, started at once (the schema is
    migrated already); yields their URLs and stops both after."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        starting = [
            pool.submit(start_server, env, log) for env, log in zip(envs, logs, strict=True)
        ]
    started = [future.result() for future in starting if future.exception() is None]
    try:
        for future in starting:
            future.result()  # the first failure to start fails the test, with its log
        yield started[0][1], started[1][1]
    finally:
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            process.wait(timeout=20)


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

    def assert_no_failures(self, *logs: Path) -> None:
        """No request failed; else the first failures, the answers and each server's log."""
        assert not self.failures, (
            f"{len(self.failures)} requests failed (not 2xx, no answer or a stale read):\n"
            + "\n".join(self.failures[:20])
            + f"\nanswers: {dict(self.answers)}"
            + "".join(f"\n--- {log.name} ---\n{tail(log)}" for log in logs)
        )


class Client:
    """One client thread's connection; any answer but a 2xx is recorded as a failure."""

    def __init__(self, base: str, ledger: Ledger) -> None:
        self.http = httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S)
        self.ledger = ledger
        self.where = f"through {base}"

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

    def append_log(
        self, expected: Expected, evaluation_id: str, content: str
    ) -> httpx.Response | None:
        response = self.write("POST", f"/evaluations/{evaluation_id}/logs", {"content": content})
        if response is not None:
            expected.log.append(content)
        return response

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

    # Each read below records a failure unless it answers what ``expected`` says.

    def read(self, path: str) -> httpx.Response | None:
        """The answer to GET ``path`` when it is a 200, else ``None`` (and a failure)."""
        try:
            response = self.http.get(path)
        except httpx.HTTPError as exc:
            self.ledger.fail(f"GET {path} {self.where}: {exc!r}")
            return None
        if response.status_code != 200:
            self.ledger.fail(
                f"GET {path} {self.where}: {response.status_code} {response.text[:300]}"
            )
            return None
        return response

    def read_back(self, expected: Expected, evaluation_id: str) -> None:
        """GET answers the state with this client's own writes, whatever the primary's state."""
        response = self.read(f"/evaluations/{evaluation_id}")
        if response is None:
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
            self.ledger.fail(
                f"GET /evaluations/{evaluation_id} {self.where} is stale: {seen} != {wanted}"
            )

    def read_timeline(self, expected: Expected, evaluation_id: str) -> None:
        """The log and the events answer this client's writes, whatever the primary's state."""
        log = self.read(f"/evaluations/{evaluation_id}/logs")
        if log is None:
            return
        events = self.read(f"/evaluations/{evaluation_id}/events")
        if events is None:
            return
        wanted_log = "".join(expected.log)
        if log.json()["content"] != wanted_log:
            self.ledger.fail(
                f"GET /evaluations/{evaluation_id}/logs {self.where} is stale: "
                f"{log.json()['content']!r} != {wanted_log!r}"
            )
        seen = [event["event_id"] for event in events.json()]
        explicit = [event_id for event_id in seen if event_id in expected.event_ids]
        if explicit != expected.event_ids or len(seen) != len(expected.event_ids) + len(
            expected.anonymous_events
        ):
            self.ledger.fail(
                f"GET /evaluations/{evaluation_id}/events {self.where} is stale: {seen}"
                f" (expected {expected.event_ids} and {len(expected.anonymous_events)} anonymous)"
            )


def output_text(evaluation_id: str, tag: str, big: bool) -> str:
    """A deterministic output; a big one (> LARGE_FILE_THRESHOLD bytes) goes to a file."""
    lines = 6_000 if big else 3
    text = "".join(f"{tag} {evaluation_id} line {n} ✓\n" for n in range(lines))
    assert (len(text.encode()) > LARGE_FILE_THRESHOLD) == big
    return text


def run_rounds(
    ledger: Ledger, who: str, going: Callable[[], bool], one_round: Callable[[int], None]
) -> None:
    """``one_round(0)``, ``one_round(1)``, … while ``going()``; a crash is a failure of ``who``."""
    try:
        n = 0
        while going():
            one_round(n)
            n += 1
    except Exception:
        ledger.fail(f"{who} crashed:\n{traceback.format_exc()}")


def cli_json(env: dict[str, str], *arguments: str, timeout_s: float = 300) -> tuple[int, Any]:
    """``storage-service <arguments>`` as its own process: its exit code and the JSON
    of the last line it printed (the command's ``--json`` report)."""
    result = subprocess.run(
        [sys.executable, "-m", "interfaces.cli", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"{arguments[0]} exited {result.returncode}:\n{result.stderr}"
    return result.returncode, json.loads(lines[-1])


# --- what the primary holds -----------------------------------------------------------


@dataclass
class Primary:
    records: dict[str, dict[str, Any]]
    chunks: dict[str, list[tuple[int, str]]]  # per evaluation, by offset
    events: dict[str, list[tuple[str, str | None]]]  # (event_id, message)


async def connect(dsn: str, timeout_s: float = 20) -> asyncpg.Connection:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await asyncpg.connect(dsn, timeout=5)
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def read_primary(dsn: str) -> Primary:
    connection = await connect(dsn)
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


async def count(dsn: str, query: str = COUNT_ROWS) -> int:
    """The number ``query`` (a ``SELECT count(*)``) answers; by default the primary's rows."""
    connection = await connect(dsn)
    try:
        return int(await connection.fetchval(query))
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
    primary = asyncio.run(read_primary(pg.dsn))
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


def assert_searchable(base: str, ledger: Ledger) -> None:
    """Every live evaluation is found by the text of its events and of its log, the ones
    journaled during the outage and replayed included: the indexes followed the replay."""
    with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as http:

        def found(text: str, where: str) -> set[str]:
            response = http.get("/evaluations", params={"q": text, "in": where, "limit": 1000})
            assert response.status_code == 200, response.text[:300]
            return {item["id"] for item in response.json()["evaluations"]}

        for evaluation_id, expected in ledger.records.items():
            if expected.deleted:
                continue
            for message in expected.anonymous_events:
                assert evaluation_id in found(message, "events"), (evaluation_id, message)
            if expected.log:
                last = expected.log[-1].splitlines()[-1]
                assert evaluation_id in found(last, "logs"), (evaluation_id, last)


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
