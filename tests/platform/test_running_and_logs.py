"""The running registry and the logs: one contract with the platform's storage worker.

Facts (crucible-eval-platform):

* The storage worker (``storage_worker/app.py``), once its ``PUT {"status": "running"}``
  succeeded, ``SETEX eval:<id>:running <timeout + 60> <json>`` with ``executor_id``
  (the job name), ``container_id``, ``started_at`` (its clock, ISO 8601) and ``timeout``,
  then ``SADD running_evaluations <id>``; after a successful terminal ``PUT`` it
  ``DEL``s the key and ``SREM``s the id. The Celery monitor instead PUTs
  ``{status: "running", executor_id, container_id, timeout}``.
* Its ``flush_logs`` POSTs ``{content, append: true, timestamp, last_update}`` to
  ``/evaluations/{id}/logs``, expects 200, then ``SETEX logs:<id>:latest 300 <text>``
  (plain text, the batch joined by newlines).
* The gateway's kill (``POST /api/eval/{id}/kill``) GETs ``/evaluations/{id}/running``:
  404 means "Evaluation not running"; otherwise ``executor_id`` is the job it deletes,
  and a missing one is its 500 "Job name not found in running info". Its status view
  reads ``started_at`` there; ``GET /api/evaluations?status=running`` reads
  ``running_evaluations[].eval_id`` (subscript), ``started_at`` and ``executor_id``.
* ``GET /api/eval/{id}/logs`` passes ``/evaluations/{id}/logs`` through; the frontend's
  ExecutionMonitor reads ``output``, ``error``, ``is_running`` (its 1 s polling),
  ``status``, ``exit_code``, ``runtime_ms``, ``started_at``, ``completed_at``,
  ``last_update``; ``useEvaluationLogs`` treats a 404 as "Evaluation not running".

Each test writes Redis exactly as the worker does (a plain client, the deployment's
key prefix, which the platform leaves empty) on both configurations; the embedded one
is given a Redis for it.
"""

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from interfaces.settings import Settings
from tests.integration.conftest import ClientFactory
from tests.platform import worker_calls
from tests.services import TEST_REDIS_URL, drop_redis_keys, redis_test_prefix

Client = TestClient[Any]
JOB = "eval-job-7f3a"


@dataclass
class Platform:
    """This service, and the platform's worker and gateway around it."""

    client: Client
    redis: "redis.Redis"
    prefix: str
    # ENCRYPTION=on: this service copies no log text into Redis.
    sealed: bool = False

    # The storage worker.

    def submit(self, eval_id: str) -> None:
        worker_calls.submit(self.client, eval_id)

    def put(self, eval_id: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.put(f"/evaluations/{eval_id}", json=body)
        assert response.status_code == 200, (body, response.text)
        record: dict[str, Any] = response.json()
        return record

    def worker_running(self, eval_id: str, executor_id: str = JOB, timeout: int = 300) -> str:
        """``handle_evaluation_running``: PUT running, then SETEX the entry and SADD the id."""
        now = datetime.now(UTC).isoformat()
        self.put(eval_id, {"status": "running", "started_at": now})
        self.worker_keys(eval_id, executor_id, timeout, started_at=now)
        return now

    def worker_keys(
        self, eval_id: str, executor_id: str, timeout: int = 300, started_at: str | None = None
    ) -> None:
        info = {
            "executor_id": executor_id,
            "container_id": executor_id,
            "started_at": started_at or datetime.now(UTC).isoformat(),
            "timeout": timeout,
        }
        self.redis.execute_command(
            "SETEX", self.running_key(eval_id), timeout + 60, json.dumps(info)
        )
        self.redis.sadd(f"{self.prefix}running_evaluations", eval_id)

    def worker_finished(self, eval_id: str, body: dict[str, Any]) -> None:
        """``handle_evaluation_completed``/``failed``: PUT, then DEL the entry and SREM."""
        self.put(eval_id, body)
        self.redis.delete(self.running_key(eval_id))
        self.redis.srem(f"{self.prefix}running_evaluations", eval_id)

    def flush_logs(self, eval_id: str, logs: list[tuple[str, str]]) -> Any:
        """``flush_logs``: POST the batch; only on 200 SETEX ``logs:<id>:latest``."""
        combined = "\n".join(content for content, _ in logs)
        body = {
            "content": combined,
            "append": True,
            "timestamp": logs[-1][1],
            "last_update": logs[-1][1],
        }
        response = self.client.post(f"/evaluations/{eval_id}/logs", json=body)
        if response.status_code == 200:
            self.redis.execute_command("SETEX", self.latest_key(eval_id), 300, combined)
        return response

    def running_key(self, eval_id: str) -> str:
        return f"{self.prefix}eval:{eval_id}:running"

    def latest_key(self, eval_id: str) -> str:
        return f"{self.prefix}logs:{eval_id}:latest"

    # The gateway and the frontend.

    def kill_job_name(self, eval_id: str) -> str | None:
        """The job ``kill_evaluation`` would delete; ``None`` for its 404 "not running"."""
        response = self.client.get(f"/evaluations/{eval_id}/running")
        if response.status_code == 404:
            return None
        running_info = response.json()
        job_name = running_info.get("executor_id")
        assert job_name, f"the gateway's 500 'Job name not found in running info': {running_info}"
        assert isinstance(job_name, str)
        return job_name

    def running_list(self) -> dict[str, dict[str, Any]]:
        """``get_evaluations(status="running")``: ``eval_info['eval_id']`` per item."""
        response = self.client.get("/evaluations/running")
        assert response.status_code == 200, response.text
        data = response.json()
        items = data.get("running_evaluations", [])
        assert data["count"] == len(items)
        return {item["eval_id"]: item for item in items}

    def logs(self, eval_id: str) -> dict[str, Any]:
        response = self.client.get(f"/evaluations/{eval_id}/logs")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def platform(make_client: ClientFactory, backend_settings: Settings) -> Iterator[Platform]:
    if backend_settings.redis.url is None:  # embedded: give it the Redis the worker uses
        url, prefix = TEST_REDIS_URL, redis_test_prefix()
        client = make_client(redis={"url": url, "key_prefix": prefix})
    else:
        url, prefix = backend_settings.redis.url, backend_settings.redis.key_prefix
        client = make_client()
    keys = redis.Redis.from_url(url)
    try:
        yield Platform(client, keys, prefix, sealed=backend_settings.encryption.enabled)
    finally:
        keys.close()
        asyncio.run(drop_redis_keys(prefix, url))


def test_kill_finds_the_job_name_only_the_workers_entry_holds(platform: Platform) -> None:
    platform.submit("run-w")
    platform.put("run-w", {"status": "provisioning"})  # Celery's evaluate_code
    started = platform.worker_running("run-w")

    assert platform.kill_job_name("run-w") == JOB
    one = platform.client.get("/evaluations/run-w/running").json()
    assert (one["eval_id"], one["status"], one["container_id"], one["timeout"]) == (
        "run-w",
        "running",
        JOB,
        300,
    )
    assert datetime.fromisoformat(one["started_at"]) == datetime.fromisoformat(started)
    listed = platform.running_list()
    assert list(listed) == ["run-w"]
    assert (listed["run-w"]["executor_id"], listed["run-w"]["timeout"]) == (JOB, 300)
    assert listed["run-w"]["started_at"] is not None


def test_a_later_put_without_the_job_name_does_not_erase_it(platform: Platform) -> None:
    platform.submit("run-p")
    platform.worker_running("run-p", timeout=600)
    # Celery's evaluate_code, a retried failure while the job runs: no executor_id.
    platform.put("run-p", {"error": "flaky", "retries": 1, "retry_message": "Retrying in 4s"})
    platform.put("run-p", {"metadata": {"note": "still running"}})

    assert platform.kill_job_name("run-p") == JOB
    assert platform.running_list()["run-p"]["executor_id"] == JOB
    entry = json.loads(platform.redis.get(platform.running_key("run-p")) or b"{}")
    assert (entry["executor_id"], entry["timeout"], entry["eval_id"]) == (JOB, 600, "run-p")
    assert 600 < platform.redis.ttl(platform.running_key("run-p")) <= 660  # the worker's TTL


def test_kill_finds_the_job_name_a_put_carried(platform: Platform) -> None:
    platform.submit("run-c")
    platform.put("run-c", {"status": "provisioning", "metadata": {"job_name": "job-c"}})
    # monitor_job_status, job running: no worker entry at all.
    platform.put(
        "run-c",
        {"status": "running", "executor_id": "job-c", "container_id": "job-c", "timeout": 300},
    )

    assert platform.kill_job_name("run-c") == "job-c"
    item = platform.running_list()["run-c"]
    assert (item["executor_id"], item["container_id"], item["timeout"]) == ("job-c", "job-c", 300)
    # The worker reads the same entry this service wrote: JSON, in its key.
    entry = json.loads(platform.redis.get(platform.running_key("run-c")) or b"{}")
    assert (entry["executor_id"], entry["status"]) == ("job-c", "running")
    assert platform.redis.sismember(f"{platform.prefix}running_evaluations", "run-c")


def test_a_finished_evaluation_is_not_running_whoever_cleans_up(platform: Platform) -> None:
    platform.submit("fin-1")
    platform.worker_running("fin-1")
    platform.submit("fin-2")
    platform.worker_running("fin-2", executor_id="job-2")
    assert set(platform.running_list()) == {"fin-1", "fin-2"}

    platform.worker_finished("fin-1", {"status": "completed", "output": "ok", "error": ""})
    # The gateway's cancel PUTs without any event: nobody but this service cleans up.
    platform.put("fin-2", {"status": "cancelled", "error": "Cancelled by user"})

    assert platform.kill_job_name("fin-1") is None
    assert platform.kill_job_name("fin-2") is None
    assert platform.running_list() == {}
    assert not platform.redis.exists(platform.running_key("fin-2"))
    # A worker entry written late, after the end, is not taken for a running job.
    platform.worker_keys("fin-2", "job-2")
    assert platform.kill_job_name("fin-2") is None


def test_an_expired_worker_entry_falls_back_to_the_database(platform: Platform) -> None:
    platform.submit("exp-1")
    platform.put("exp-1", {"status": "running", "executor_id": "job-e", "timeout": 30})
    platform.submit("exp-2")
    platform.worker_running("exp-2", executor_id="job-x")
    platform.redis.delete(platform.running_key("exp-1"))  # as when its TTL runs out
    platform.redis.delete(platform.running_key("exp-2"))

    listed = platform.running_list()

    assert set(listed) == {"exp-1", "exp-2"}  # both still run, says the database
    assert listed["exp-1"]["executor_id"] == "job-e"
    assert platform.kill_job_name("exp-1") == "job-e"
    assert platform.client.get("/evaluations/exp-2/running").status_code == 200
    # The registry was rebuilt from the database: the entries are back.
    assert platform.redis.exists(platform.running_key("exp-1"))


def test_the_workers_log_flush_is_answered_and_shown_to_the_monitor(platform: Platform) -> None:
    platform.submit("log-1")
    platform.worker_running("log-1")
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    batch = [("step 1", (at - timedelta(seconds=1)).isoformat()), ("step 2", at.isoformat())]

    flushed = platform.flush_logs("log-1", batch)

    assert flushed.status_code == 200, flushed.text
    answer = flushed.json()
    assert (answer["status"], answer["eval_id"]) == ("success", "log-1")
    assert (answer["offset"], answer["size"], answer["next_offset"]) == (0, 13, 13)
    logs = platform.logs("log-1")
    assert (logs["eval_id"], logs["output"], logs["error"]) == ("log-1", "step 1\nstep 2", "")
    tail = "database" if platform.sealed else "redis_cache"
    assert (logs["is_running"], logs["status"], logs["source"]) == (True, "running", tail)
    assert datetime.fromisoformat(logs["last_update"]) == at
    assert logs["started_at"] is not None
    assert (logs["completed_at"], logs["runtime_ms"], logs["exit_code"]) == (None, None, None)
    # The record carries it too: the gateway's detail view and the explorer read it there.
    record = platform.client.get("/evaluations/log-1").json()
    assert datetime.fromisoformat(record["last_update"]) == at
    # A second batch is appended after the first, without a separator (as the original).
    platform.flush_logs("log-1", [("step 3", at.isoformat())])
    assert platform.logs("log-1")["output"] == "step 1\nstep 2step 3"


def test_the_platforms_latest_logs_are_shown_while_the_log_is_empty(platform: Platform) -> None:
    platform.submit("lat-1")
    platform.worker_running("lat-1")
    platform.redis.execute_command(
        "SETEX", platform.latest_key("lat-1"), 300, "line 1\nline 2 ✓".encode()
    )

    logs = platform.logs("lat-1")

    assert (logs["output"], logs["source"], logs["is_running"]) == (
        "line 1\nline 2 ✓",
        "redis_cache",
        True,
    )
    # Not this service's log: tailing by offset still starts at 0.
    assert (logs["content"], logs["offset"], logs["next_offset"]) == ("", 0, 0)

    # Finished: the record answers, from the database.
    platform.worker_finished("lat-1", {"status": "completed", "output": "final\n", "exit_code": 0})
    done = platform.logs("lat-1")
    assert (done["output"], done["source"], done["is_running"]) == ("final\n", "database", False)
    assert (done["status"], done["exit_code"]) == ("completed", 0)
    assert done["completed_at"] is not None and done["runtime_ms"] is not None


def test_a_failed_run_shows_its_error_and_exit_code(platform: Platform) -> None:
    platform.submit("err-1")
    platform.worker_running("err-1")
    platform.flush_logs("err-1", [("Traceback (most recent call last):", "2024-07-01T12:00:00")])
    # monitor_job_status, job failed.
    platform.put("err-1", {"status": "failed", "error": "ZeroDivisionError", "exit_code": 1})

    logs = platform.logs("err-1")

    assert (logs["status"], logs["is_running"], logs["exit_code"]) == ("failed", False, 1)
    assert logs["error"] == "ZeroDivisionError"
    assert logs["output"] == "Traceback (most recent call last):"  # no output: the log
    assert logs["source"] == "database"
    # A timestamp without an offset (``utcnow().isoformat()``) is taken as UTC.
    assert datetime.fromisoformat(logs["last_update"]) == datetime(2024, 7, 1, 12, tzinfo=UTC)


def test_a_rewrite_of_the_log_is_refused_by_name(platform: Platform) -> None:
    platform.submit("rw-1")
    platform.flush_logs("rw-1", [("kept", "2024-07-01T12:00:00+00:00")])

    response = platform.client.post(
        "/evaluations/rw-1/logs", json={"content": "replacement", "append": False}
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "append"
    assert platform.logs("rw-1")["content"] == "kept"


def test_logs_of_an_unknown_evaluation_are_404(platform: Platform) -> None:
    """The worker logs and drops the batch; ``useEvaluationLogs`` says "not running"."""
    posted = platform.client.post(
        "/evaluations/nobody/logs",
        json={"content": "x", "append": True, "timestamp": None, "last_update": None},
    )
    assert posted.status_code == 404
    assert not platform.redis.exists(platform.latest_key("nobody"))
    assert platform.client.get("/evaluations/nobody/logs").status_code == 404
    assert platform.client.get("/evaluations/nobody/running").status_code == 404


def test_the_logs_without_the_workers_redis(client: Client, backend_settings: Settings) -> None:
    """Each configuration as configured: the tail is Redis's or this process's."""
    client.post("/evaluations", json={"id": "own-1", "code": "x", "status": "running"})
    assert client.post("/evaluations/own-1/logs", json={"content": "a\n"}).status_code == 200

    logs = client.get("/evaluations/own-1/logs").json()

    cached = "redis_cache" if backend_settings.redis.url else "memory_cache"
    if backend_settings.encryption.enabled:
        cached = "database"  # no log text is copied into Redis: tails come from the log
    assert (logs["output"], logs["content"], logs["source"]) == ("a\n", "a\n", cached)
    assert logs["last_update"] is not None
