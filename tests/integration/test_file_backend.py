"""``STORAGE_BACKEND=file``: the index beside the records is disposable, and ``serve`` and
``fsck`` bring it back whatever happened to it (lost, torn, behind or ahead of the tree).

The rest of the HTTP suite runs on this backend as one more configuration
(``tests/integration/conftest.py``); here is only what the index adds.
"""

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from domain.evaluation import Evaluation
from infrastructure.sql.index_file import hold_serving
from interfaces.cli import main
from interfaces.cli.recovery import prepare_file_index
from interfaces.http.app import create_app
from interfaces.settings import Settings, StorageBackend, file_index_path, load_settings
from tests.integration.test_cli_fsck import environment
from tests.keys import write_keys_file


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {}, storage={"backend": StorageBackend.FILE, "file_storage_path": tmp_path / "tree"}
    )


def _serve(settings: Settings) -> TestClient[Any]:
    """What ``storage-service serve`` does: the index made ready, then the app."""
    prepare_file_index(settings)
    return TestClient(create_app(settings.changed(cache={"enabled": False})))


def _fill(client: TestClient[Any], count: int) -> dict[str, Any]:
    for n in range(count):
        evaluation_id = f"f-{n}"
        assert client.post(
            "/evaluations", json={"id": evaluation_id, "code": f"print({n})"}
        ).is_success
        assert client.post(
            f"/evaluations/{evaluation_id}/logs", json={"content": f"log {n} ✓\n"}
        ).is_success
        event = {"type": "progress", "message": f"step {n}", "event_id": f"e-{n}"}
        assert client.post(f"/evaluations/{evaluation_id}/events", json=event).is_success
        status = "completed" if n % 2 else "failed"
        assert client.put(f"/evaluations/{evaluation_id}", json={"status": "running"}).is_success
        assert client.put(f"/evaluations/{evaluation_id}", json={"status": status}).is_success
    return _view(client)


def _view(client: TestClient[Any]) -> dict[str, Any]:
    """What callers read: the list, the statistics' counts, each timeline."""
    listed = client.get("/evaluations", params={"limit": 100}).json()["evaluations"]
    stats = client.get("/statistics").json()
    return {
        "list": listed,
        "by_status": stats["by_status"],
        "timelines": {
            item["id"]: (
                client.get(f"/evaluations/{item['id']}/logs").json()["content"],
                client.get(f"/evaluations/{item['id']}/events").json(),
            )
            for item in listed
        },
    }


def _fsck(settings: Settings, *arguments: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["fsck", "--json", *arguments], env=environment(settings))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return result.exit_code, report


def test_a_lost_index_is_built_again_from_the_tree_at_start(settings: Settings) -> None:
    with _serve(settings) as client:
        before = _fill(client, 5)
    index = file_index_path(settings.storage.file_storage_path)
    for path in index.parent.iterdir():
        path.unlink()
    with _serve(settings) as client:
        assert _view(client) == before
    assert sorted(path.name for path in index.parent.iterdir()) == ["records.sqlite3"]


def test_a_torn_index_is_set_aside_and_built_again(settings: Settings) -> None:
    with _serve(settings) as client:
        before = _fill(client, 4)
    index = file_index_path(settings.storage.file_storage_path)
    with index.open("r+b") as file:  # the header and the first pages overwritten
        file.write(b"\x00garbage" * 512)
    code, report = _fsck(settings)
    assert code == 1 and report["index"]["problem"].startswith("torn"), report
    with _serve(settings) as client:
        assert _view(client) == before
    kept = [path.name for path in index.parent.iterdir() if ".torn-" in path.name]
    assert len(kept) == 1, kept  # the torn one, for a post-mortem


def test_fsck_finds_and_fixes_an_index_behind_or_ahead_of_the_tree(settings: Settings) -> None:
    tree = settings.storage.file_storage_path / "evaluations"
    with _serve(settings) as client:
        _fill(client, 4)
        assert client.put("/evaluations/f-1", json={"metadata": {"k": 1}}).is_success
    code, report = _fsck(settings, "--grace-minutes", "0")
    assert (code, report["clean"]) == (0, True), report

    # f-0's copy lost (a crash before the copy) and f-1's older: the index is ahead.
    (tree / "f-0" / "metadata.json").unlink()
    (tree / "f-0" / "events.jsonl").unlink()
    copy = tree / "f-1" / "metadata.json"
    record = msgspec.json.decode(copy.read_bytes(), type=Evaluation)
    copy.write_bytes(msgspec.json.encode(msgspec.structs.replace(record, version=2)))
    # f-9 is in the tree alone (the index lost it): the index is behind.
    (tree / "f-9").mkdir()
    lone = msgspec.structs.replace(record, id="f-9", metadata={"lone": True})
    (tree / "f-9" / "metadata.json").write_bytes(msgspec.json.encode(lone))

    code, found = _fsck(settings, "--grace-minutes", "0")
    assert code == 1
    assert (found["index"]["uncopied"], found["index"]["unindexed"]) == (["f-0", "f-1"], ["f-9"])

    code, fixed = _fsck(settings, "--grace-minutes", "0", "--fix")
    assert code == 0, fixed
    assert fixed["index"]["copied"] == ["f-0", "f-1"]
    assert fixed["index"]["rebuild"]["restored"] == 1
    assert msgspec.json.decode(copy.read_bytes(), type=Evaluation).metadata == {"k": 1}
    assert len((tree / "f-0" / "events.jsonl").read_text().splitlines()) == 1
    assert _fsck(settings, "--grace-minutes", "0")[1]["clean"] is True
    with _serve(settings) as client:
        assert client.get("/evaluations/f-9").json()["metadata"] == {"lone": True}


def test_a_stale_index_is_rebuilt_on_request(settings: Settings) -> None:
    tree = settings.storage.file_storage_path / "evaluations"
    with _serve(settings) as client:
        _fill(client, 2)
    copy = tree / "f-0" / "metadata.json"
    record = msgspec.json.decode(copy.read_bytes(), type=Evaluation)
    newer = msgspec.structs.replace(record, version=record.version + 1, metadata={"v": "tree"})
    copy.write_bytes(msgspec.json.encode(newer))
    code, found = _fsck(settings)
    assert code == 1 and found["index"]["stale"] == ["f-0"], found
    code, rebuilt = _fsck(settings, "--rebuild-index")
    assert code == 0, rebuilt
    assert ".replaced-" in rebuilt["index"]["set_aside"]
    with _serve(settings) as client:
        assert client.get("/evaluations/f-0").json()["metadata"] == {"v": "tree"}


def test_a_database_url_beside_the_file_backend_is_refused() -> None:
    result = CliRunner().invoke(
        main, ["fsck"], env={"STORAGE_BACKEND": "file", "DATABASE_URL": "sqlite:///x.db"}
    )
    assert result.exit_code == 2
    assert "unset DATABASE_URL" in result.output


def test_a_delete_whose_copy_was_lost_stays_deleted(settings: Settings) -> None:
    tree = settings.storage.file_storage_path / "evaluations"
    with _serve(settings) as client:
        _fill(client, 2)
        live_copy = (tree / "f-0" / "metadata.json").read_bytes()
        assert client.delete("/evaluations/f-0").status_code == 200
    (tree / "f-0" / "metadata.json").write_bytes(live_copy)  # the delete's copy never came
    code, found = _fsck(settings)
    assert code == 1 and found["index"]["uncopied"] == ["f-0"], found
    code, fixed = _fsck(settings, "--fix")
    assert code == 0 and fixed["index"]["copied"] == ["f-0"], fixed
    assert _fsck(settings, "--rebuild-index")[0] == 0
    with _serve(settings) as client:
        assert client.get("/evaluations/f-0").status_code == 404
        assert client.get("/evaluations/f-1").status_code == 200


def test_a_lost_event_copy_is_found_and_copied_again(settings: Settings) -> None:
    events = settings.storage.file_storage_path / "evaluations" / "f-0" / "events.jsonl"
    with _serve(settings) as client:
        _fill(client, 1)
        events.unlink()  # a crash between the event's commit and its copy
        code, found = _fsck(settings)
        assert code == 1 and found["index"]["uncopied"] == ["f-0"], found
        # The worker's redelivery (same event_id) is answered as stored, and copied again.
        again = {"type": "progress", "message": "step 0", "event_id": "e-0"}
        assert client.post("/evaluations/f-0/events", json=again).is_success
        assert _fsck(settings)[1]["clean"] is True
        events.write_text(events.read_text()[:10])  # torn this time, not redelivered
    code, found = _fsck(settings)
    assert code == 1 and found["index"]["uncopied"] == ["f-0"], found
    assert _fsck(settings, "--fix")[0] == 0
    assert json.loads(events.read_text().splitlines()[-1])["event_id"] == "e-0"


def test_an_empty_index_beside_a_tree_without_records_is_kept(settings: Settings) -> None:
    with _serve(settings):
        pass
    index = file_index_path(settings.storage.file_storage_path)
    before = index.stat().st_ino
    stray = settings.storage.file_storage_path / "evaluations" / "no-record"
    stray.mkdir(parents=True)
    (stray / ".output.x.txt.tmp").write_bytes(b"an upload a crash left")
    with _serve(settings):
        pass
    assert index.stat().st_ino == before  # neither replaced nor set aside
    assert sorted(path.name for path in index.parent.iterdir()) == ["records.sqlite3"]


def test_a_tree_restored_from_elsewhere_lands_whole_in_this_tree(
    settings: Settings, tmp_path: Path
) -> None:
    with _serve(settings) as client:
        before = _fill(client, 3)
    other = load_settings(
        {}, storage={"backend": StorageBackend.FILE, "file_storage_path": tmp_path / "other"}
    )
    source = str(settings.storage.file_storage_path)
    result = CliRunner().invoke(
        main, ["rebuild-database", "--from", source, "--json"], env=environment(other)
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["restored"] == 3
    copied = other.storage.file_storage_path / "evaluations" / "f-1"
    assert sorted(path.name for path in copied.iterdir()) == [
        "events.jsonl",
        "log.txt",
        "metadata.json",
    ]
    assert _fsck(other)[1]["clean"] is True
    with _serve(other) as client:
        assert _view(client) == before
    refused = CliRunner().invoke(
        main, ["rebuild-database", "--from", str(tmp_path)], env=environment(other)
    )
    assert refused.exit_code == 2 and "no evaluations/" in refused.output


def test_the_index_is_not_replaced_under_a_serving_process(settings: Settings) -> None:
    with _serve(settings) as client:
        before = _fill(client, 2)
    index = file_index_path(settings.storage.file_storage_path)
    held = hold_serving(index.parent)  # what ``serve`` holds for its whole life
    try:
        refused = CliRunner().invoke(main, ["fsck", "--rebuild-index"], env=environment(settings))
        assert refused.exit_code == 3, refused.output
        assert "stop it before the index is replaced" in refused.output
        assert not [path for path in index.parent.iterdir() if ".replaced-" in path.name]
    finally:
        os.close(held)
    assert _fsck(settings, "--rebuild-index")[0] == 0
    with _serve(settings) as client:
        assert _view(client) == before


def test_with_shredding_a_rebuilt_index_keeps_the_evaluation_keys(
    settings: Settings, tmp_path: Path
) -> None:
    """The tree's files are sealed under evaluation keys held in the index (ADR 0033): an
    index rebuilt by ``fsck --rebuild-index`` carries them over from the one it replaces,
    so the tree still reads; an index lost whole loses them, and the tree with them."""
    keys = write_keys_file(tmp_path / "keys")
    on = {"enabled": True, "keys_file": keys, "shredding": True}
    sealed = settings.changed(encryption=on)
    env = {
        **environment(sealed),
        "ENCRYPTION": "on",
        "ENCRYPTION_SHREDDING": "on",
        "ENCRYPTION_KEYS_FILE": str(keys),
    }
    with _serve(sealed) as client:
        view = _fill(client, 2)
    record = settings.storage.file_storage_path / "evaluations" / "f-0" / "metadata.json"
    assert record.read_bytes().startswith(b"sealed~f-0 ")

    rebuilt = CliRunner().invoke(main, ["fsck", "--json", "--rebuild-index"], env=env)

    assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads(rebuilt.stdout.strip().splitlines()[-1])["index"]["rebuild"]["restored"] == 2
    with _serve(sealed) as client:
        assert _view(client) == view
    index = file_index_path(settings.storage.file_storage_path)
    for built in index.parent.glob(index.name + "*"):
        built.unlink()  # the index lost whole, with the keys in it
    with _serve(sealed) as client:
        assert client.get("/evaluations", params={"limit": 10}).json()["evaluations"] == []
