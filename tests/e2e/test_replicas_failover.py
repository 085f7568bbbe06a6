"""Failover across two replicas that share one journal directory (issue 9).

Two ``storage-service serve`` processes share the throwaway PostgreSQL
(``tests.pg_server``), Redis (a key prefix of this test's own) and one
``FILE_STORAGE_PATH``, so both journal their writes into ``FILE_STORAGE_PATH/journal``
(a segment each) while PostgreSQL is down, and one of them at a time replays all
segments (``journal/.replay.lock``) once it is back.

Each client lane writes to its evaluations alternately through replica A and
replica B, one request after the other, so every write through one replica must
land after the previous one through the other: the final state (status, metadata,
log order) shows whether it did. During the outage a record created then is read
through the replica that did not write last (its record, its log and its events),
which works only because both read every segment of the shared journal. Afterwards
PostgreSQL is checked directly against what the clients were told (the harness of
the failover tests, ``tests/e2e/harness.py``): records exact, logs byte for byte in order, each
event once, no mark left in ``journal_applied`` and no segment left on disk.
"""

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from infrastructure.sql.migrate import upgrade
from tests.e2e.harness import (
    ACCEPTED,
    HTTP_TIMEOUT_S,
    Client,
    Expected,
    Ledger,
    assert_primary_holds,
    count,
    health,
    replicas,
    run_rounds,
    service_env,
    tail,
    wait_drained,
)
from tests.pg_server import PgServer, wait_until
from tests.services import (
    TEST_REDIS_URL,
    drop_redis_keys,
    redis_test_prefix,
    serve_subprocess,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

LANES = 4  # client threads, each writing through both replicas in turn
OUTAGE_WRITES_S = 3.0
# Rounds each lane writes in the outage even on a loaded machine: the records made then
# outnumber those made before it (the ledger's check below), whatever the speed.
OUTAGE_ROUNDS = 3
MARKS_TIMEOUT_S = 10.0
COUNT_MARKS = "SELECT count(*) FROM journal_applied"


class Lane:
    """One client's pair of connections: ``clients[0]`` to replica A, ``clients[1]`` to B."""

    def __init__(self, bases: tuple[str, str], ledger: Ledger, lane: int) -> None:
        self.clients = (Client(bases[0], ledger), Client(bases[1], ledger))
        self.ledger = ledger
        self.lane = lane
        self.before: list[str] = []  # evaluations created while PostgreSQL was up

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def turn(self, n: int) -> tuple[Client, Client]:
        """The replica to write through first in round ``n``, and the other one."""
        a, b = self.clients
        return (a, b) if n % 2 == 0 else (b, a)


def append_log(client: Client, expected: Expected, evaluation_id: str, content: str) -> None:
    """Append and check the answered offset: the log's length so far, whoever wrote it."""
    before = len("".join(expected.log).encode())
    response = client.append_log(expected, evaluation_id, content)
    # A 202 (the log is in the primary) has no offset.
    if response is not None and response.status_code == 200:
        body = response.json()
        if (body.get("offset"), body.get("next_offset")) != (
            before,
            before + len(content.encode()),
        ):
            client.ledger.fail(
                f"POST /evaluations/{evaluation_id}/logs {client.where}: "
                f"offsets {body}, expected {before}"
            )


def before_outage(lane: Lane) -> None:
    """Two records per lane, one made through each replica, each read through the other."""
    for index, (first, second) in enumerate((lane.turn(0), lane.turn(1))):
        evaluation_id = first.create(
            f"rf-pre-{lane.lane}-{index}", f"print('pre', {lane.lane}, {index})", {"pre": index}
        )
        if evaluation_id is None:
            continue
        expected = lane.ledger.records[evaluation_id]
        append_log(second, expected, evaluation_id, f"{evaluation_id} before the outage\n")
        second.event(expected, evaluation_id, f"{evaluation_id}-pre", "before the outage")
        first.read_back(expected, evaluation_id)
        lane.before.append(evaluation_id)


def during_outage(lane: Lane, n: int) -> None:
    """One round: a record made now, written through both replicas in turn; and writes
    to one of the records made before the outage."""
    first, second = lane.turn(n)
    evaluation_id = first.create(
        f"rf-{lane.lane}-{n}", f"print({lane.lane}, {n})  # ✓", {"lane": lane.lane, "n": n}
    )
    if evaluation_id is not None:
        expected = lane.ledger.records[evaluation_id]
        second.update(
            expected,
            evaluation_id,
            {"status": "provisioning", "executor_id": f"exec-{n}", "metadata": {"phase": 1}},
        )
        first.celery(expected, evaluation_id, "STARTED", f"task-{evaluation_id}")
        append_log(second, expected, evaluation_id, f"{evaluation_id} one ✓\n")
        append_log(first, expected, evaluation_id, f"{evaluation_id} two\n")
        second.event(expected, evaluation_id, f"{evaluation_id}-e0", "e0")
        first.event(expected, evaluation_id, f"{evaluation_id}-e0", "e0")  # redelivered
        first.event(expected, evaluation_id, None, f"{evaluation_id} without an id")
        second.update(
            expected,
            evaluation_id,
            {"output": f"small output of {evaluation_id}", "metadata": {"phase": 2}},
        )
        append_log(first, expected, evaluation_id, f"{evaluation_id} three\n")
        # B wrote last: A reads it all from the shared journal, and the other way round.
        first.read_back(expected, evaluation_id)
        first.read_timeline(expected, evaluation_id)
        if n % 3 == 2:
            first.update(expected, evaluation_id, {"status": "completed", "runtime_ms": n})
        else:
            first.celery(expected, evaluation_id, "SUCCESS", f"task-{evaluation_id}")
        second.read_back(expected, evaluation_id)
        second.read_timeline(expected, evaluation_id)

    # A record made before the outage: computed from the shared cache, or answered 202.
    if not lane.before:
        return
    old = lane.before[n % len(lane.before)]
    expected = lane.ledger.records[old]
    if n < len(lane.before):
        first.celery(expected, old, "STARTED", f"task-{old}")
    second.update(expected, old, {"metadata": {"touched": n, f"by-{n % 2}": n}})
    append_log(first, expected, old, f"{old} during the outage {n}\n")
    second.event(expected, old, f"{old}-o{n}", f"during the outage {n}")
    first.read_back(expected, old)


def outage_writer(lane: Lane, deadline: float) -> None:
    """Rounds until ``deadline``, and at least ``OUTAGE_ROUNDS`` however slow they are."""
    done = 0

    def one_round(n: int) -> None:
        nonlocal done
        during_outage(lane, n)
        done = n + 1

    run_rounds(
        lane.ledger,
        f"lane {lane.lane}",
        lambda: done < OUTAGE_ROUNDS or time.monotonic() < deadline,
        one_round,
    )


def segments(journal: Path) -> list[str]:
    return sorted(path.name for path in journal.glob("*.jsonl")) if journal.exists() else []


def assert_degraded_alike(bases: tuple[str, str], logs: tuple[Path, Path]) -> None:
    """Both replicas see the same backlog: they read the same journal."""
    answers: list[dict[str, Any]] = []
    for base, log in zip(bases, logs, strict=True):
        with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as http:
            status, body = health(http)
        assert (status, body.get("status")) == (200, "degraded"), (base, body, tail(log))
        answers.append(body)
    pending = [body.get("pending_replay") for body in answers]
    assert pending[0] == pending[1] and isinstance(pending[0], int) and pending[0] > 0, answers


def test_two_replicas_journal_into_one_directory_and_replay_it_once(
    tmp_path: Path, pg: PgServer
) -> None:
    files = tmp_path / "files"
    journal = files / "journal"
    logs = (tmp_path / "replica-a.log", tmp_path / "replica-b.log")
    prefix = redis_test_prefix()
    env = {
        **service_env(pg, files),
        "REDIS_URL": TEST_REDIS_URL,
        "REDIS_KEY_PREFIX": prefix,
        # Console logs render tracebacks (asyncpg's, when the pool loses PostgreSQL) on
        # the event loop for seconds each; JSON lines keep the outage's answers prompt.
        "LOG_FORMAT": "json",
    }
    ledger = Ledger()
    try:
        upgrade(pg.url)
        with replicas((env, env), logs) as bases:
            lanes = [Lane(bases, ledger, lane) for lane in range(LANES)]
            try:
                for lane in lanes:
                    before_outage(lane)
                ledger.assert_no_failures(*logs)
                assert len(ledger.records) == 2 * LANES

                pg.stop("immediate")
                deadline = time.monotonic() + OUTAGE_WRITES_S
                writers = [
                    threading.Thread(target=outage_writer, args=(lane, deadline), daemon=True)
                    for lane in lanes
                ]
                for writer in writers:
                    writer.start()
                for writer in writers:
                    writer.join(timeout=60)
                assert not any(writer.is_alive() for writer in writers), "a lane hangs"
            finally:
                for lane in lanes:
                    lane.close()
            ledger.assert_no_failures(*logs)
            assert len(ledger.records) > 4 * LANES, ledger.answers  # several rounds each
            # Appends to logs held by the primary cannot be computed: journaled, 202.
            assert ledger.answers[ACCEPTED] > 0, ledger.answers
            assert len(segments(journal)) >= 2, (
                "each replica journals into a segment of its own",
                segments(journal),
            )
            assert_degraded_alike(bases, logs)

            pg.start()
            for base, log in zip(bases, logs, strict=True):
                wait_drained(base, log)
            assert wait_until(
                lambda: asyncio.run(count(pg.dsn, COUNT_MARKS)) == 0, MARKS_TIMEOUT_S, 0.2
            ), f"journal_applied still holds {asyncio.run(count(pg.dsn, COUNT_MARKS))} marks"
            assert segments(journal) == [], "the replayed segments are deleted"
            assert_primary_holds(pg, ledger)

            # Both replicas serve the replayed records (the shared cache was refilled).
            for base in bases:
                client = Client(base, ledger)
                try:
                    for evaluation_id, expected in sorted(ledger.records.items()):
                        client.read_back(expected, evaluation_id)
                finally:
                    client.close()
            ledger.assert_no_failures(*logs)
    finally:
        asyncio.run(drop_redis_keys(prefix))


def test_a_replica_that_wrote_nothing_yet_journals_too(tmp_path: Path, pg: PgServer) -> None:
    """A replica that only answered health checks when PostgreSQL died (a fresh one
    behind the load balancer) journals writes like the others."""
    log = tmp_path / "server.log"
    env = {**service_env(pg, tmp_path / "files"), "LOG_FORMAT": "json"}
    with (
        serve_subprocess(env, log) as (base, _),
        httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as http,
    ):
        pg.stop("immediate")
        made = http.post("/evaluations", json={"id": "fresh-1", "code": "x"})
        assert made.status_code == 200, (made.status_code, made.text[:300], tail(log, 1500))
        pg.start()
        wait_drained(base, log)
        assert http.get("/evaluations/fresh-1").status_code == 200
