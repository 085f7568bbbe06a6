"""cleanup, warm-cache, rebuild-cache, usage, export and import against a live data set,
embedded and on PostgreSQL + Redis."""

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from click.testing import CliRunner, Result
from litestar.testing import TestClient

from interfaces.cli import main
from interfaces.http.app import create_app
from interfaces.settings import Settings, load_settings
from tests.integration.conftest import ClientFactory
from tests.integration.test_cli_fsck import environment
from tests.services import TEST_REDIS_URL, migrated_postgres_database

BIG = "y" * 150_000 + "ü"


def cli(settings: Settings, *args: str, expect: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), env=environment(settings))
    assert result.exit_code == expect, (result.output, result.exception)
    return result


def cli_json(settings: Settings, *args: str, expect: int = 0) -> Any:
    return json.loads(cli(settings, *args, "--json", expect=expect).stdout.strip().splitlines()[-1])


def seed(client: TestClient[Any], name: str, *, status: str = "completed") -> None:
    assert client.post("/evaluations", json={"id": name, "code": "print(1)"}).is_success
    assert client.post(f"/evaluations/{name}/logs", json={"content": "step ✓\n"}).is_success
    assert client.post(
        f"/evaluations/{name}/events", json={"event_type": "note", "event_id": "n1"}
    ).is_success
    changes: dict[str, Any] = {"output": BIG, "error": "boom"}
    if status != "queued":
        changes["status"] = "running"
        assert client.put(f"/evaluations/{name}", json=changes).is_success
        if status != "running":
            assert client.put(f"/evaluations/{name}", json={"status": status}).is_success
    else:
        assert client.put(f"/evaluations/{name}", json=changes).is_success


def test_cleanup_removes_old_evaluations_with_everything_they_own(
    client: TestClient[Any], backend_settings: Settings, make_client: ClientFactory
) -> None:
    root = Path(backend_settings.storage.file_storage_path) / "evaluations"
    seed(client, "old-done")
    seed(client, "old-failed", status="failed")
    seed(client, "old-running", status="running")
    seed(client, "old-deleted", status="queued")
    assert client.delete("/evaluations/old-deleted").status_code == 200
    assert client.get("/evaluations/old-done").is_success  # cached now
    settled = time.time()
    time.sleep(2.2)
    seed(client, "fresh-done")

    def older_than() -> str:
        """Whole seconds back to where the old records settled: the cutoff lands in the
        2.2 s gap before ``fresh-done`` however slowly the commands run."""
        return f"{int(time.time() - settled)}s"

    # Each: the output, and its record's snapshot unless the mirror keeps that (not a blob).
    blobs = 2 if backend_settings.storage.file_mirror else 4
    dry = cli_json(backend_settings, "cleanup", "--older-than", older_than(), "--dry-run")
    assert (dry["dry_run"], dry["evaluations"], dry["blobs"]) == (True, 2, blobs)
    assert (root / "old-done").exists()

    done = cli_json(backend_settings, "cleanup", "--older-than", older_than(), "--batch-size", "1")
    assert (done["evaluations"], done["events"], done["log_chunks"], done["blobs"]) == (
        2,
        2,
        2,
        blobs,
    )
    assert done["batches"] == 2  # one evaluation per transaction
    # Without Redis the server's cache is its own: a new process sees what the command did.
    client = client if backend_settings.redis.url else make_client()
    for gone in ("old-done", "old-failed"):
        assert client.get(f"/evaluations/{gone}").status_code == 404
        assert not (root / gone).exists()
    for kept in ("old-running", "fresh-done"):
        assert client.get(f"/evaluations/{kept}").is_success
    assert (root / "old-deleted").exists()

    with_deleted = cli_json(
        backend_settings, "cleanup", "--older-than", older_than(), "--include-deleted"
    )
    assert with_deleted["evaluations"] == 1
    assert not (root / "old-deleted").exists()
    assert client.post("/evaluations", json={"id": "old-deleted", "code": "x"}).is_success

    again = cli_json(backend_settings, "cleanup", "--older-than", older_than(), "--include-deleted")
    assert again["evaluations"] == 0  # a rerun finds nothing left: resumable
    assert cli_json(backend_settings, "fsck")["clean"] is True

    text = cli(backend_settings, "cleanup", "--older-than", "30d")
    assert "removed 0 evaluation(s)" in text.output
    bad = cli(backend_settings, "cleanup", "--older-than", "soon", expect=2)
    assert "--older-than" in bad.output


def test_warm_cache_and_rebuild_cache(client: TestClient[Any], backend_settings: Settings) -> None:
    for index in range(3):
        assert client.post("/evaluations", json={"id": f"w-{index}", "code": "x"}).is_success
    assert client.put("/evaluations/w-0", json={"status": "running"}).is_success

    warmed = cli_json(backend_settings, "warm-cache", "--top", "2")
    assert warmed["loaded"] == 2
    rebuilt = cli_json(backend_settings, "rebuild-cache")
    assert rebuilt["running"] == 1
    if backend_settings.redis.url:
        assert warmed["cache"] == "redis"
        prefix = backend_settings.redis.key_prefix

        async def keys() -> set[str]:
            client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
            try:
                return {k async for k in client.scan_iter(match=f"{prefix}*")}
            finally:
                await client.aclose()

        cli_json(backend_settings, "warm-cache", "--top", "2")
        found = asyncio.run(keys())
        assert {f"{prefix}eval:{{w-0}}", f"{prefix}eval:{{w-2}}"} <= found  # latest changes
        assert cli_json(backend_settings, "rebuild-cache")["dropped"] >= 2
        found = asyncio.run(keys())
        assert not {k for k in found if k.endswith("}") and ":eval:{w-" in f":{k}"}
        assert f"{prefix}eval:w-0:running" in found  # the registry is not a cache entry
    else:
        assert "no REDIS_URL" in cli(backend_settings, "rebuild-cache").output
    running = client.get("/evaluations/running").json()["running_evaluations"]
    assert [e["eval_id"] for e in running] == ["w-0"]


def test_usage_reports_every_backend(client: TestClient[Any], backend_settings: Settings) -> None:
    seed(client, "u-1")
    usage = cli_json(backend_settings, "usage")
    assert usage["status"] in {"healthy", "degraded"}
    assert usage["backends"]["database"]["metrics"]["evaluations"] == 1
    assert usage["backends"]["file"]["metrics"]["files"] >= 2
    assert set(usage["backends"]) == {"database", "file", "cache"}
    assert "database (" in cli(backend_settings, "usage").output


def test_export_then_import_is_idempotent(
    client: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    seed(client, "x-1")
    seed(client, "x-2", status="failed")
    dump = tmp_path / "evals.jsonl"
    cli(backend_settings, "export", "-o", str(dump))
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [line["record"]["id"] for line in lines] == ["x-2", "x-1"]
    assert lines[0]["output"] == BIG and lines[0]["error"] == "boom"
    assert lines[0]["log"] == "step ✓\n" and lines[0]["events"][0]["event_id"] == "n1"
    assert "print(1)" in dump.read_text()  # the record travels whole, code included

    assert cli_json(backend_settings, "import", str(dump)) == {"imported": 0, "skipped": 2}
    assert cli(backend_settings, "export", "--since", "1d").stdout.count("\n") == 2
    assert cli(backend_settings, "export", "--since", "2999-01-01").stdout == ""
    broken = tmp_path / "broken.jsonl"
    broken.write_text(dump.read_text().splitlines()[0] + "\n{not json\n")
    assert "line 2" in cli(backend_settings, "import", str(broken), expect=1).output


@pytest.mark.postgres
def test_export_from_sqlite_imports_into_postgresql(tmp_path: Path) -> None:
    """The move the commands exist for: embedded SQLite to PostgreSQL, outputs whole."""
    from infrastructure.sql.migrate import upgrade

    source_url = f"sqlite+aiosqlite:///{tmp_path / 'source.db'}"
    upgrade(source_url)
    source = load_settings(
        {}, database={"url": source_url}, storage={"file_storage_path": tmp_path / "a"}
    )
    with TestClient(create_app(source)) as client:
        seed(client, "move-1")
        seed(client, "move-2", status="running")
        before = {n: client.get(f"/evaluations/{n}/complete").json() for n in ("move-1", "move-2")}
    dump = tmp_path / "evals.jsonl"
    cli(source, "export", "-o", str(dump))

    with migrated_postgres_database() as url:
        target = load_settings(
            {}, database={"url": url}, storage={"file_storage_path": tmp_path / "b"}
        )
        assert cli_json(target, "import", str(dump)) == {"imported": 2, "skipped": 0}
        assert cli_json(target, "import", str(dump)) == {"imported": 0, "skipped": 2}
        with TestClient(create_app(target)) as client:
            for name, expected in before.items():
                after = client.get(f"/evaluations/{name}/complete").json()
                # Where each artifact is differs (another database and file root); what is not.
                was, now = expected.pop("storage_locations"), after.pop("storage_locations")
                assert after == expected
                assert now.keys() == was.keys()
            assert client.get("/evaluations/move-1/output").text == BIG
            running = client.get("/evaluations/running").json()["running_evaluations"]
            assert [e["eval_id"] for e in running] == ["move-2"]
            appended = client.post("/evaluations/move-1/logs", json={"content": "more\n"})
            assert appended.json()["offset"] == len("step ✓\n".encode())
        assert cli_json(target, "fsck")["clean"] is True
