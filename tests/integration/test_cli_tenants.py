"""``--tenant``: the commands that read or write evaluations act for the tenant it names
(ADR 0032), embedded, on the file backend and on PostgreSQL + Redis.

The second tenant's evaluations arrive the way an operator moves them: ``import
--tenant``.
"""

import json
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from litestar.testing import TestClient

from interfaces.cli import main
from interfaces.settings import Settings
from tests.integration.test_cli_fsck import age, environment, fsck
from tests.integration.test_cli_maintenance import cli, cli_json, seed

ACME = "acme"


def _exported(settings: Settings, *tenant: str) -> list[dict[str, Any]]:
    output = cli(settings, "export", *tenant).stdout
    return [json.loads(line) for line in output.splitlines()]


def _copy_to_acme(settings: Settings, directory: Path, renamed: dict[str, str]) -> None:
    """The default tenant's export imported into tenant ``acme``, each id renamed as
    ``renamed`` says."""
    dump = directory / "default.jsonl"
    cli(settings, "export", "-o", str(dump))
    text = dump.read_text()
    for old, new in renamed.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    moved = directory / "acme.jsonl"
    moved.write_text(text)
    imported = cli_json(settings, "import", str(moved), "--tenant", ACME)
    assert imported == {"imported": len(renamed), "skipped": 0}


def test_an_export_imported_into_another_tenant_is_that_tenants_alone(
    client: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    seed(client, "x-1")

    _copy_to_acme(backend_settings, tmp_path, {"x-1": "t-1"})

    acme = _exported(backend_settings, "--tenant", ACME)
    default = _exported(backend_settings)
    assert [line["record"]["id"] for line in acme] == ["t-1"]
    assert [line["record"]["id"] for line in default] == ["x-1"]
    # The whole evaluation travelled: its outputs, log and events.
    assert acme[0]["output"] == default[0]["output"] and acme[0]["log"] == default[0]["log"]
    assert [e["evaluation_id"] for e in acme[0]["events"]] == ["t-1"]


def test_erase_in_one_tenant_leaves_the_other_tenants_evaluations_of_the_subject(
    client: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    for name in ("s-1", "s-2"):
        body = {"id": name, "code": "x", "metadata": {"subject": "alice"}}
        assert client.post("/evaluations", json=body).is_success
    _copy_to_acme(backend_settings, tmp_path, {"s-1": "a-1", "s-2": "a-2"})

    erased = cli_json(backend_settings, "erase", "--subject", "alice", "--tenant", ACME)

    assert erased["evaluations"] == 2
    assert _exported(backend_settings, "--tenant", ACME) == []
    assert sorted(line["record"]["id"] for line in _exported(backend_settings)) == ["s-1", "s-2"]
    assert client.get("/evaluations/s-1").is_success


def test_cleanup_counts_only_the_named_tenants_evaluations(
    client: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    seed(client, "c-1")
    _copy_to_acme(backend_settings, tmp_path, {"c-1": "c-acme"})

    def dry_run(*tenant: str) -> int:
        report = cli_json(backend_settings, "cleanup", "--older-than", "1s", "--dry-run", *tenant)
        return int(report["evaluations"])

    time.sleep(1.1)  # both records (the import keeps their times) are older than a second
    assert dry_run("--tenant", ACME) == 1
    assert dry_run() == 1
    removed = cli_json(backend_settings, "cleanup", "--older-than", "1s", "--tenant", ACME)
    assert removed["evaluations"] == 1
    assert [line["record"]["id"] for line in _exported(backend_settings)] == ["c-1"]


def test_a_tenant_that_is_no_tenant_name_is_one_line_and_exit_2(
    backend_settings: Settings,
) -> None:
    commands = [["export"], ["import", "-"], ["erase", "--subject", "a"], ["relay"], ["fsck"]]
    commands += [["warm-cache"], ["rebuild-cache"]]
    for command in commands:
        result = CliRunner().invoke(
            main, [*command, "--tenant", "Acme/1"], env=environment(backend_settings)
        )
        assert result.exit_code == 2, (command, result.output)
        assert result.output.strip().splitlines() == [
            "error: --tenant: a tenant is 1 to 63 of a-z 0-9 _ -, starting with a letter or a digit"
        ], command


def test_fsck_checks_the_named_tenants_blobs_against_its_records(
    client: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    seed(client, "f-1")
    _copy_to_acme(backend_settings, tmp_path, {"f-1": "f-acme"})
    ghost = Path(backend_settings.storage.file_storage_path) / "tenants/acme/evaluations/ghost-1"
    ghost.mkdir(parents=True)
    (ghost / "output.txt.zst").write_bytes(b"left behind")
    age(ghost / "output.txt.zst", hours=3)

    code, acme = fsck(backend_settings, "--tenant", ACME)
    default_code, default = fsck(backend_settings)

    assert code == 1
    assert acme["orphans"] == ["tenants/acme/evaluations/ghost-1/output.txt.zst"]
    assert acme["referenced"] == default["referenced"] > 0
    assert (default_code, default["orphans"], default["missing"]) == (0, [], [])
    code, fixed = fsck(backend_settings, "--tenant", ACME, "--fix")
    assert (code, fixed["removed"]) == (0, acme["orphans"])


def test_warm_cache_and_rebuild_cache_act_for_the_named_tenant(
    client: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    seed(client, "w-1")
    _copy_to_acme(backend_settings, tmp_path, {"w-1": "w-acme"})
    seed(client, "w-2", status="running")

    assert cli_json(backend_settings, "warm-cache", "--tenant", ACME)["loaded"] == 1
    assert cli_json(backend_settings, "warm-cache")["loaded"] == 2
    assert cli_json(backend_settings, "rebuild-cache", "--tenant", ACME)["running"] == 0
    assert cli_json(backend_settings, "rebuild-cache")["running"] == 1
