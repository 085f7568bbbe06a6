"""``storage-service replay`` against a journal left behind, embedded and on PostgreSQL."""

import fcntl
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from litestar.testing import TestClient

from application.commands import EvaluationChanges, NewEvaluation
from application.intents import AppendLogIntent, CreateIntent, JournalEntry, UpdateIntent
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from infrastructure.files.journal import LOCK_NAME, FileJournal
from interfaces.settings import Settings, StorageBackend, file_index_path
from tests.integration.conftest import ClientFactory
from tests.integration.test_cli_maintenance import cli, cli_json

AT = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)


def entry(evaluation_id: str, intent: Any, second: int) -> JournalEntry:
    return JournalEntry(
        id=uuid.uuid4().hex,
        evaluation_id=evaluation_id,
        at=AT.replace(second=second),
        intent=intent,
        actor="key:gateway",
        request_id=f"req-{second}",
    )


def leave_journal(root: Path, evaluation_id: str) -> None:
    """What a service killed during an outage leaves: three acknowledged writes."""

    async def write() -> None:
        journal = FileJournal(root)
        try:
            await journal.append(
                entry(
                    evaluation_id,
                    CreateIntent(NewEvaluation(code="x", id=EvaluationId(evaluation_id))),
                    1,
                )
            )
            running = EvaluationChanges(status=EvaluationStatus.RUNNING, output="so far ✓")
            await journal.append(entry(evaluation_id, UpdateIntent(running), 2))
            await journal.append(entry(evaluation_id, AppendLogIntent("line ✓\n"), 3))
        finally:
            journal.close()

    anyio.run(write)


def test_replay_drains_a_journal_once_and_keeps_the_instants(
    backend_settings: Settings, make_client: ClientFactory
) -> None:
    root = Path(backend_settings.storage.file_storage_path)
    leave_journal(root, "left-1")

    report = cli_json(backend_settings, "replay")
    again = cli_json(backend_settings, "replay")

    assert (report["applied"], report["skipped"], report["remaining"]) == (3, 0, 0)
    assert (again["applied"], again["remaining"]) == (0, 0)
    assert not list((root / "journal").glob("*.jsonl"))
    client: TestClient[Any] = make_client()
    record = client.get("/evaluations/left-1").json()
    assert record["status"] == "running"
    assert record["output"] == "so far ✓"
    assert record["version"] == 3  # the append moved it on too
    assert record["created_at"] == "2026-11-01T12:00:01.123456Z"
    assert record["updated_at"] == "2026-11-01T12:00:02.123456Z"
    assert record["last_update"] == "2026-11-01T12:00:03.123456Z"  # the append's own instant
    assert client.get("/evaluations/left-1/logs").json()["content"] == "line ✓\n"
    audit = client.get("/audit", params={"evaluation_id": "left-1"}).json()["items"]
    assert {item["actor"] for item in audit} == {"key:gateway"}
    assert {item["request_id"] for item in audit} == {"req-1", "req-2", "req-3"}


def test_replay_says_when_another_process_replays(backend_settings: Settings) -> None:
    root = Path(backend_settings.storage.file_storage_path)
    leave_journal(root, "left-2")
    with (root / "journal" / LOCK_NAME).open("ab") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        result = cli(backend_settings, "replay", expect=3)
    assert "another process" in result.output
    assert cli_json(backend_settings, "replay")["applied"] == 3


def test_replay_fails_while_the_database_is_down(backend_settings: Settings) -> None:
    root = Path(backend_settings.storage.file_storage_path)
    leave_journal(root, "left-3")
    down = backend_settings.changed(
        database={
            "url": "postgresql+asyncpg://postgres@127.0.0.1:1/postgres",
            "connect_timeout_s": 1.0,
        }
    )
    if backend_settings.storage.backend is StorageBackend.FILE:
        # The file backend's database is its index: one that cannot be opened is down.
        index = file_index_path(root)
        for path in index.parent.iterdir():
            path.unlink()
        index.mkdir()
        down = backend_settings

    result = cli(down, "replay", expect=1)

    assert "unavailable" in result.output
    assert len(list((root / "journal").glob("*.jsonl"))) == 1  # nothing lost


def test_fsck_fix_waits_for_the_journal(backend_settings: Settings) -> None:
    root = Path(backend_settings.storage.file_storage_path)
    leave_journal(root, "left-4")

    refused = cli(backend_settings, "fsck", "--fix", expect=3)

    assert "replay" in refused.output
    cli_json(backend_settings, "replay")
    assert cli_json(backend_settings, "fsck", "--fix")["clean"] is True
