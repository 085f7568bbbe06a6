"""``storage-service fsck`` against a live data set, embedded and on PostgreSQL."""

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from dishka import make_async_container
from litestar.testing import TestClient

from application.commands import NewEvaluation
from application.errors import JournalPendingError
from application.intents import CreateIntent, JournalEntry
from application.use_cases.check_storage import CheckStorage
from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT
from infrastructure.files.journal import FileJournal
from interfaces import acting
from interfaces.cli import main
from interfaces.providers import build_providers
from interfaces.settings import Settings, StorageBackend

BIG = "x" * 200_000


def environment(settings: Settings) -> dict[str, str]:
    """The variables that make a command's process work on ``settings``' data set."""
    env = {
        "FILE_STORAGE_PATH": str(settings.storage.file_storage_path),
        "LOG_LEVEL": "WARNING",
    }
    if settings.storage.backend is StorageBackend.FILE:
        env["STORAGE_BACKEND"] = "file"  # its index is found in the tree
    else:
        env["DATABASE_URL"] = settings.database.url
    if settings.database.migration_url:
        env["MIGRATION_DATABASE_URL"] = settings.database.migration_url
    if settings.redis.url:
        env |= {"REDIS_URL": settings.redis.url, "REDIS_KEY_PREFIX": settings.redis.key_prefix}
    return env


def fsck(settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["fsck", "--json", *args], env=environment(settings))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.output.strip().splitlines()[-1])


def age(path: Path, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def test_fsck_finds_orphans_and_missing_blobs_and_fixes_orphans(
    client: TestClient[Any], backend_settings: Settings
) -> None:
    root = Path(backend_settings.storage.file_storage_path) / "evaluations"
    for name in ("keep-1", "lost-1", "gone-1"):
        assert client.post("/evaluations", json={"id": name, "code": "x"}).is_success
        assert client.put(f"/evaluations/{name}", json={"output": BIG}).is_success
    assert client.delete("/evaluations/gone-1").status_code == 200  # soft: blobs stay referenced

    code, clean = fsck(backend_settings)
    assert (code, clean["clean"], clean["orphans"], clean["missing"]) == (0, True, [], [])
    assert clean["referenced"] == 3

    [lost] = (root / "lost-1").glob("output.*.txt.zst")
    lost.unlink()  # a record pointing at nothing
    ghost = root / "ghost-1"  # a crash between blob and record
    ghost.mkdir()
    for name in ("output.txt.zst", "metadata.json"):
        (ghost / name).write_bytes(b"left behind")
        age(ghost / name, hours=3)
    fresh = root / "fresh-1"  # an upload in progress
    fresh.mkdir()
    (fresh / "output.txt.zst").write_bytes(b"being written")

    code, found = fsck(backend_settings)
    assert code == 1
    # Where every record is mirrored, metadata.json is a record's copy, never a blob.
    ghosts = (
        ["output.txt.zst"]
        if backend_settings.storage.file_mirror
        else ["metadata.json", "output.txt.zst"]
    )
    assert found["orphans"] == [f"evaluations/ghost-1/{name}" for name in ghosts]
    assert found["orphan_bytes"] == len(ghosts) * len(b"left behind")
    assert found["missing"] == [f"evaluations/lost-1/{lost.name}"]
    assert found["young"] == ["evaluations/fresh-1/output.txt.zst"]
    assert found["removed"] == []

    code, fixed = fsck(backend_settings, "--fix")
    assert code == 1  # the missing blob cannot be fixed by deleting anything
    assert fixed["removed"] == found["orphans"]
    assert not (ghost / "output.txt.zst").exists()
    assert (fresh / "output.txt.zst").exists()
    assert list((root / "keep-1").glob("output.*.txt.zst"))

    assert client.put("/evaluations/lost-1", json={"output": "small again"}).is_success
    code, after = fsck(backend_settings, "--grace-minutes", "0", "--fix")
    assert (code, after["missing"], after["removed"]) == (
        0,
        [],
        ["evaluations/fresh-1/output.txt.zst"],
    )


def test_fsck_fix_is_refused_by_the_check_while_the_journal_holds_writes(
    backend_settings: Settings,
) -> None:
    root = Path(backend_settings.storage.file_storage_path)
    ghost = root / "evaluations" / "journaled-1"  # an upload the journal's entry points at
    ghost.mkdir(parents=True)
    (ghost / "output.txt.zst").write_bytes(b"journaled")
    age(ghost / "output.txt.zst", hours=3)

    async def journal_then_fix() -> None:
        journal = FileJournal(root)
        try:
            await journal.append(
                JournalEntry(
                    id=uuid.uuid4().hex,
                    evaluation_id="journaled-1",
                    at=datetime.now(UTC),
                    intent=CreateIntent(NewEvaluation(code="x", id=EvaluationId("journaled-1"))),
                    actor="key:gateway",
                )
            )
        finally:
            journal.close()
        container = make_async_container(
            *build_providers(backend_settings), context={Settings: backend_settings}
        )
        try:
            # As the CLI's fsck runs it: for the default tenant.
            with acting.acting_as(acting.system_for(DEFAULT_TENANT)):
                async with container() as request:
                    check = await request.get(CheckStorage)
                    with pytest.raises(JournalPendingError):
                        await check.execute(fix=True, grace=timedelta(0))
                    found = await check.execute(grace=timedelta(0))  # looking is still allowed
        finally:
            await container.close()
        assert found.orphans == ["evaluations/journaled-1/output.txt.zst"]

    anyio.run(journal_then_fix)
    assert (ghost / "output.txt.zst").exists()
