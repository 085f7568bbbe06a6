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
state of each is well defined; the load is parallel across evaluations. The clients,
their ledger and the checks against PostgreSQL are in ``tests/e2e/harness.py``.
"""

import asyncio
import errno
import os
import shutil
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    ACCEPTED,
    COUNT_ROWS,
    DRAIN_TIMEOUT_S,
    HTTP_TIMEOUT_S,
    Client,
    Ledger,
    assert_outputs_served,
    assert_primary_holds,
    assert_searchable,
    cli_json,
    connect,
    count,
    health,
    output_text,
    read_primary,
    run_rounds,
    service_env,
    tail,
    wait_drained,
)
from tests.pg_server import PgServer, wait_until
from tests.services import serve_subprocess, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


# --- /health during the outage ----------------------------------------------------------


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


def load_thread(
    connect: Callable[[], Client], ledger: Ledger, thread: int, stop: threading.Event
) -> None:
    client = connect()
    try:
        run_rounds(
            ledger,
            f"client thread {thread}",
            lambda: not stop.is_set(),
            lambda n: lifecycle(client, thread, n),
        )
    finally:
        client.close()


@contextmanager
def lifecycle_load(connect: Callable[[], Client], ledger: Ledger, count: int) -> Iterator[None]:
    """``count`` client threads, each on a client of its own from ``connect``, running
    :func:`lifecycle` until the block ends; then joined."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=load_thread, args=(connect, ledger, thread, stop), daemon=True)
        for thread in range(count)
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a client thread hangs"


def test_outage_under_concurrent_load_loses_and_doubles_nothing(
    tmp_path: Path, pg: PgServer
) -> None:
    log = tmp_path / "server.log"
    ledger = Ledger()
    with serve_subprocess(service_env(pg, tmp_path / "files"), log) as (base, _):
        watch = HealthWatch(base)
        watch.start()
        try:
            with lifecycle_load(lambda: Client(base, ledger), ledger, LOAD_THREADS):
                time.sleep(1.0)  # records made before the outage, then changed during it
                pg.stop("immediate")
                outage_start = time.monotonic()
                time.sleep(3.5)
                during = metric_values(base)
                time.sleep(0.5)
                outage_end = time.monotonic()
                pg.start()
                time.sleep(1.0)  # writes while the replay runs
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
        assert_searchable(base, ledger)


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
    connection = await connect(dsn)
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
        baseline = asyncio.run(count(pg.dsn))
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
    replayed = asyncio.run(count(pg.dsn)) - baseline
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
    primary = asyncio.run(read_primary(pg.dsn))
    assert sorted(primary.records) == ["nj-before"], sorted(primary.records)
    assert primary.records["nj-before"]["log_size"] == 0
    assert primary.chunks == {}


# --- d: the replay command ------------------------------------------------------------


def run_replay(env: dict[str, str]) -> Any:
    code, report = cli_json(env, "replay", "--json", timeout_s=60)
    assert code == 0, f"replay exited {code}: {report}"
    return report


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
