"""A real service (SQLite, or PostgreSQL + Redis) and real Celery workers on RabbitMQ.

Every run uses queues (and exchanges) of its own and deletes them afterwards, so
runs on one broker never take each other's tasks.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from crucible_storage import StorageClient
from crucible_storage.celery import Installation, install

from infrastructure.sql.migrate import upgrade
from interfaces.http.app import create_app
from interfaces.settings import load_settings
from tests.celery.tasks import BROKER_URL, make_app
from tests.services import (
    TEST_REDIS_URL,
    drop_redis_keys,
    redis_test_prefix,
    require_service,
    serve_in_thread,
    temporary_postgres_database,
)

ROOT = Path(__file__).resolve().parents[2]
LIVE = {"submitted", "queued", "provisioning", "running"}


def require_rabbitmq() -> None:
    require_service("RabbitMQ", BROKER_URL, 5672)


@pytest.fixture(
    scope="module",
    params=[
        "embedded",
        pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ],
)
def storage_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The service, served in a thread of this process, on a fresh data set."""
    root = tmp_path_factory.mktemp("storage")
    files = {"file_storage_path": root / "files"}
    if request.param == "embedded":
        url = f"sqlite+aiosqlite:///{root / 'storage.db'}"
        upgrade(url)
        with serve_in_thread(
            create_app(load_settings({}, database={"url": url}, storage=files))
        ) as base:
            yield base
        return
    prefix = redis_test_prefix()
    try:
        with temporary_postgres_database() as url:
            upgrade(url)
            settings = load_settings(
                {},
                database={"url": url},
                storage=files,
                redis={"url": TEST_REDIS_URL, "key_prefix": prefix},
            )
            with serve_in_thread(create_app(settings)) as base:
                yield base
    finally:
        asyncio.run(drop_redis_keys(prefix))


@pytest.fixture(scope="module")
def storage(storage_url: str) -> Iterator[StorageClient]:
    client = StorageClient(storage_url, timeout=10.0, retries=2)
    yield client
    client.close()


def unique_queue(label: str) -> str:
    return f"crucible-test-{label}-{uuid.uuid4().hex[:10]}"


def delete_queues(*names: str) -> None:
    """Remove a run's queues and the exchanges Celery declared under the same names, and
    Celery's own exchanges (remote control, events) when nothing else uses them.
    """
    from kombu.connection import Connection

    with Connection(BROKER_URL) as connection:
        channel = connection.channel()
        try:
            for name in names:
                channel.queue_delete(name)
                channel.exchange_delete(name)
        finally:
            channel.close()
        for name in ("celery.pidbox", "reply.celery.pidbox", "celeryev"):
            # A refused delete (still in use) closes its channel: one channel each.
            channel = connection.channel()
            with contextlib.suppress(Exception):
                channel.exchange_delete(name, if_unused=True)
            with contextlib.suppress(Exception):
                channel.close()


@dataclass
class Worker:
    """A ``celery worker`` subprocess, in a process group of its own (its pool children too)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def hostname(self) -> str:
        return self.name

    def kill(self) -> None:
        """SIGKILL the whole worker at once: nothing is acked, nothing reported."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        """Cold shutdown: a test stops a worker only once its tasks are over."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def spawn_worker(
    queue: str, storage_url: str, log_dir: Path, *, label: str, concurrency: int = 2
) -> Worker:
    """Start a prefork worker consuming ``queue`` (``ready`` waits for it)."""
    require_rabbitmq()
    name = f"{label}-{uuid.uuid4().hex[:6]}@crucible-test"
    log = log_dir / f"{label}.log"
    env = {
        **os.environ,
        "CRUCIBLE_TEST_QUEUE": queue,
        "CRUCIBLE_TEST_STORAGE_URL": storage_url,
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "tests.celery.worker_app", "worker",
        "--pool", "prefork", "--concurrency", str(concurrency), "--queues", queue,
        "--hostname", name, "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "INFO",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Worker(name=name, process=process, log=log)


def ready(*workers: Worker) -> None:
    """Wait until every worker says it is ready; fails with the log of one that did not."""
    deadline = time.monotonic() + 30
    for worker in workers:
        while " ready." not in worker.text():
            if worker.process.poll() is not None or time.monotonic() > deadline:
                for each in workers:
                    each.stop()
                pytest.fail(f"celery worker did not start:\n{worker.text()}")
            time.sleep(0.1)


@dataclass
class CeleryRun:
    """A worker on its own queue and the publishing side (this process) installed too."""

    queue: str
    app: Any
    worker: Worker
    storage_url: str
    log_dir: Path
    installation: Installation
    extra_queues: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def celery_run(storage_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryRun]:
    require_rabbitmq()
    queue = unique_queue("main")
    log_dir = tmp_path_factory.mktemp("celery")
    app = make_app(queue)
    installation = install(app, client=StorageClient(storage_url, timeout=5.0, retries=3))
    worker = spawn_worker(queue, storage_url, log_dir, label="main")
    ready(worker)
    run = CeleryRun(queue, app, worker, storage_url, log_dir, installation)
    try:
        yield run
    finally:
        worker.stop()
        installation.uninstall()
        delete_queues(queue, *run.extra_queues)
        app.close()


def wait_for(
    storage: StorageClient,
    evaluation_id: str,
    done: Callable[[Any, list[Any]], bool],
    *,
    timeout: float = 30.0,
) -> tuple[Any, list[Any]]:
    """Poll the record and its events until ``done`` holds; fails with what was seen."""
    deadline = time.monotonic() + timeout
    while True:
        record = storage.evaluations.get(evaluation_id)
        events = [e for e in storage.events.list(evaluation_id) if e.type.startswith("task_")]
        if done(record, events):
            return record, events
        if time.monotonic() > deadline:
            pytest.fail(
                f"{evaluation_id}: status {record.status}, events "
                f"{[e.type for e in events]} after {timeout} s"
            )
        time.sleep(0.1)


def finished_with(last_event: str) -> Callable[[Any, list[Any]], bool]:
    """Done once the status is final and the final event is in."""

    def done(record: Any, events: list[Any]) -> bool:
        return record.status not in LIVE and bool(events) and events[-1].type == last_event

    return done


def new_evaluation(storage: StorageClient, status: str = "submitted") -> str:
    created = storage.evaluations.create(code="print('hi')", status=status)
    return str(created.id)
