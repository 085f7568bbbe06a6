"""The change feed across a real PostgreSQL outage: journaled writes appear after replay.

A stream opened before the outage stays open through it (keepalives only), and once the
journal is replayed it delivers the writes acknowledged during the outage, in the order
they were journaled: the same changes ``GET /changes`` lists, nothing skipped, nothing
twice.
"""

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import service_env, wait_drained
from tests.pg_server import PgServer
from tests.services import serve_subprocess
from tests.sse import KEEPALIVE, events

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
EVAL = "eval_20240101_000000_fe0001"
OTHER = "eval_20240101_000000_fe0002"
DURING_OUTAGE = [
    (EVAL, "status_changed"),
    (EVAL, "log_appended"),
    (EVAL, "event_recorded"),
    (OTHER, "created"),
]


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 202), response.text
    body: dict[str, Any] = response.json()
    return body


class Watcher(threading.Thread):
    """Reads ``/changes/stream`` after ``cursor`` until it holds ``wanted`` changes."""

    def __init__(self, base: str, cursor: str, wanted: int) -> None:
        super().__init__(daemon=True)
        self.base, self.cursor, self.wanted = base, cursor, wanted
        self.changes: list[dict[str, Any]] = []
        self.following = threading.Event()

    def run(self) -> None:
        path = f"{self.base}/changes/stream"
        with httpx.stream("GET", path, params={"after": self.cursor}, timeout=120) as response:
            for event in events(response):
                if event == KEEPALIVE:
                    # Sent once the stream has read the feed after its cursor and waits on
                    # the hub. The answer's headers come before that read: an outage begun
                    # in between is one the stream did not open before.
                    self.following.set()
                else:
                    self.changes.append(json.loads(event.data))
                if len(self.changes) == self.wanted:
                    return


def test_writes_journaled_in_an_outage_reach_the_feed_and_its_streams_in_order(
    tmp_path: Path, pg: PgServer
) -> None:
    env = {**service_env(pg, tmp_path / "files"), "CHANGES_KEEPALIVE_S": "1"}
    log = tmp_path / "server.log"
    with serve_subprocess(env, log) as (base, _), httpx.Client(base_url=base, timeout=20) as http:
        _ok(http.post("/evaluations", json={"id": EVAL, "code": "print(1)"}))
        start = _ok(http.get("/changes"))["next_cursor"]
        watcher = Watcher(base, start, wanted=len(DURING_OUTAGE))
        watcher.start()
        assert watcher.following.wait(20)

        pg.stop("immediate")
        _ok(http.put(f"/evaluations/{EVAL}", json={"status": "running"}))
        _ok(http.post(f"/evaluations/{EVAL}/logs", json={"content": "during\n"}))
        _ok(http.post(f"/evaluations/{EVAL}/events", json={"type": "note", "message": "m"}))
        _ok(http.post("/evaluations", json={"id": OTHER, "code": "print(2)"}))
        assert watcher.changes == []

        pg.start()
        wait_drained(base, log)
        watcher.join(60)
        listed = _ok(http.get("/changes", params={"after": start}))["items"]

    assert [(c["evaluation_id"], c["kind"]) for c in listed] == DURING_OUTAGE
    assert watcher.changes == listed
    assert listed[0]["status"] == "running"
