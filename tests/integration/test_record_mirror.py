"""``FILE_MIRROR=true`` through the API, on both configurations: what the mirror holds after
each kind of write, that ``fsck`` and ``cleanup`` know its files, and that
``rebuild-database --from`` restores a fresh database the API then answers the same from.
"""

import json
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from dishka import AsyncContainer
from litestar.testing import TestClient

from application.ports.evaluation_repository import EvaluationRepository
from application.ports.event_log import EventLog
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.sql.migrate import upgrade
from interfaces.acting import acting_for
from interfaces.cli import main
from interfaces.cli.common import run
from interfaces.http.app import create_app
from interfaces.settings import Settings, StorageBackend
from tests.integration.conftest import ClientFactory
from tests.integration.test_cli_fsck import environment
from tests.services import migrated_postgres_database

ACME = TenantId("acme")
LARGE = "a large output line ✓\n" * 10_000  # > LARGE_FILE_THRESHOLD: a file beside the copy


@pytest.fixture
def mirrored(make_client: ClientFactory) -> TestClient[Any]:
    return make_client(storage={"file_mirror": True})


def _files(settings: Settings) -> Path:
    return settings.storage.file_storage_path


def _copy(settings: Settings, evaluation_id: str) -> Path:
    return _files(settings) / "evaluations" / evaluation_id


def _write_a_life(client: TestClient[Any], evaluation_id: str) -> None:
    """One evaluation through every kind of write the mirror follows."""
    created = client.post(
        "/evaluations", json={"id": evaluation_id, "code": "print('✓')", "metadata": {"a": 1}}
    )
    assert created.status_code == 200, created.text
    for body in (
        {"status": "running", "executor_id": "exec-1"},
        {"metadata": {"b": 2}, "output": "inline ✓"},
    ):
        assert client.put(f"/evaluations/{evaluation_id}", json=body).status_code == 200
    for n in range(3):
        logged = client.post(
            f"/evaluations/{evaluation_id}/logs", json={"content": f"line {n} ✓\n"}
        )
        assert logged.status_code == 200, logged.text
        event = {"type": "progress", "message": f"step {n}", "event_id": f"{evaluation_id}-{n}"}
        assert client.post(f"/evaluations/{evaluation_id}/events", json=event).status_code == 200
    uploaded = client.put(
        f"/evaluations/{evaluation_id}/output",
        content=LARGE.encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert uploaded.status_code == 200, uploaded.text
    done = client.put(f"/evaluations/{evaluation_id}", json={"status": "completed"})
    assert done.status_code == 200, done.text


def _answers(client: TestClient[Any], evaluation_id: str) -> dict[str, Any]:
    """What a caller reads back about one evaluation (the list's view of it included)."""
    record = client.get(f"/evaluations/{evaluation_id}").json()
    return {
        "record": record,
        "events": client.get(f"/evaluations/{evaluation_id}/events").json(),
        "log": client.get(f"/evaluations/{evaluation_id}/logs").json()["content"],
        "output": client.get(f"/evaluations/{evaluation_id}/output").text,
    }


def test_every_committed_write_is_in_the_copy(
    mirrored: TestClient[Any], backend_settings: Settings
) -> None:
    _write_a_life(mirrored, "mirror-1")
    copy = _copy(backend_settings, "mirror-1")
    names = sorted(os.listdir(copy))
    assert names[:3] == ["events.jsonl", "log.txt", "metadata.json"], names
    assert len(names) == 4 and names[3].startswith("output."), names  # the large output
    record = msgspec.json.decode((copy / "metadata.json").read_bytes(), type=Evaluation)
    answered = mirrored.get("/evaluations/mirror-1").json()
    assert record.version == answered["version"] and record.status == "completed"
    assert record.metadata == {"a": 1, "b": 2} and record.executor_id == "exec-1"
    assert record.output is not None and record.output.key == f"evaluations/mirror-1/{names[3]}"
    assert (copy / "log.txt").read_text() == "line 0 ✓\nline 1 ✓\nline 2 ✓\n"
    lines = [json.loads(line) for line in (copy / "events.jsonl").read_text().splitlines()]
    assert [line["event_id"] for line in lines] == [f"mirror-1-{n}" for n in range(3)]

    # fsck: the copy's files are the mirror's, never orphan blobs.
    assert _fsck(backend_settings)["orphans"] == []


def test_a_deleted_record_is_copied_deleted_and_a_purge_forgets_it(
    mirrored: TestClient[Any], backend_settings: Settings
) -> None:
    _write_a_life(mirrored, "mirror-gone")
    assert mirrored.delete("/evaluations/mirror-gone").status_code in {200, 204}
    deleted = time.time()
    copy = _copy(backend_settings, "mirror-gone")
    record = msgspec.json.decode((copy / "metadata.json").read_bytes(), type=Evaluation)
    assert record.deleted_at is not None
    time.sleep(1.1)
    older_than = f"{int(time.time() - deleted)}s"
    report = _cli(backend_settings, "cleanup", "--older-than", older_than, "--include-deleted")
    assert report["evaluations"] == 1, report
    assert not copy.exists(), sorted(os.listdir(copy))


@pytest.mark.alone("rebuild-database restores every tenant")
def test_a_fresh_database_rebuilt_from_the_copy_answers_the_same(
    mirrored: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    for evaluation_id in ("rebuilt-1", "rebuilt-2"):
        _write_a_life(mirrored, evaluation_id)
    assert mirrored.delete("/evaluations/rebuilt-2").status_code in {200, 204}
    before = _answers(mirrored, "rebuilt-1")
    with _fresh_database(backend_settings, tmp_path) as fresh:
        report = _cli(fresh, "rebuild-database", "--from", str(_files(fresh)))
        assert (report["restored"], report["unreadable"], report["problems"]) == (2, [], [])
        assert report["events"] == 6 and report["log_bytes"] == 2 * len(before["log"].encode())
        again = _cli(fresh, "rebuild-database", "--from", str(_files(fresh)))
        assert (again["restored"], again["skipped"]) == (0, 2)
        # No cache: every answer below comes from the rebuilt database.
        with TestClient(
            create_app(fresh.changed(cache={"enabled": False}, redis={"url": None}))
        ) as rebuilt:
            after = _answers(rebuilt, "rebuilt-1")
            assert rebuilt.get("/evaluations/rebuilt-2").status_code == 404  # deleted stays so
            listed = rebuilt.get("/evaluations", params={"status": "completed"}).json()
    assert after == before
    assert [item["id"] for item in listed["evaluations"]] == ["rebuilt-1"]


@pytest.mark.alone("rebuild-database restores every tenant")
def test_a_tree_of_both_layouts_is_rebuilt_each_tenant_into_its_own(
    mirrored: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    """The default tenant's copy under ``evaluations/``, acme's (with its output) under
    ``tenants/acme/evaluations/``: each restored into its tenant's rows. (Their ids differ:
    one id in two tenants' rows needs the tenant in the primary key, ADR 0032's step 3.)"""
    _write_a_life(mirrored, "ours-1")
    ours = _copy(backend_settings, "ours-1")
    record = msgspec.json.decode((ours / "metadata.json").read_bytes(), type=Evaluation)
    assert record.output is not None and record.output.key is not None
    blob = Path(record.output.key).name
    theirs = _files(backend_settings) / "tenants" / "acme" / "evaluations" / "theirs-1"
    theirs.mkdir(parents=True)
    shutil.copy(ours / blob, theirs / blob)
    output = msgspec.structs.replace(record.output, key=f"tenants/acme/evaluations/theirs-1/{blob}")
    acme = msgspec.structs.replace(
        record, id=EvaluationId("theirs-1"), metadata={"tenant": "acme"}, output=output
    )
    (theirs / "metadata.json").write_bytes(msgspec.json.encode(acme))

    with _fresh_database(backend_settings, tmp_path) as fresh:
        report = _cli(fresh, "rebuild-database", "--from", str(_files(fresh)))
        assert (report["restored"], report["unreadable"], report["problems"]) == (2, [], [])
        rows = run(fresh, _each_tenants({DEFAULT_TENANT: "ours-1", ACME: "theirs-1"}))
    assert rows[DEFAULT_TENANT] == (record.metadata, record.output.key, 3)
    assert rows[ACME] == ({"tenant": "acme"}, output.key, 0)


def _each_tenants(
    ids: dict[TenantId, str],
) -> Callable[[AsyncContainer], Awaitable[dict[TenantId, tuple[object, str | None, int]]]]:
    """What the database holds of each tenant's evaluation (and nothing of the other
    tenant's): metadata, output key, events."""

    async def read(container: AsyncContainer) -> dict[TenantId, tuple[object, str | None, int]]:
        found: dict[TenantId, tuple[object, str | None, int]] = {}
        for tenant, evaluation_id in ids.items():
            with acting_for(tenant):
                async with container() as request:
                    repository = await request.get(EvaluationRepository)
                    for other in set(ids.values()) - {evaluation_id}:
                        assert await repository.get(EvaluationId(other)) is None, tenant
                    stored = await repository.get(EvaluationId(evaluation_id))
                    assert stored is not None and stored.output is not None, tenant
                    events = await (await request.get(EventLog)).list(stored.id)
                    found[tenant] = (stored.metadata, stored.output.key, len(events))
        return found

    return read


@contextmanager
def _fresh_database(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """The same files and thresholds on an empty database of the same kind (the file
    backend's is its index: deleted, so that the rebuild makes it anew)."""
    if settings.storage.backend is StorageBackend.FILE:
        for path in (settings.storage.file_storage_path / "index").iterdir():
            path.unlink()
        yield settings
        return
    if settings.database.is_postgres:
        with migrated_postgres_database() as url:
            yield settings.changed(database={"url": url})
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    upgrade(url)
    yield settings.changed(database={"url": url})


def _cli(settings: Settings, *arguments: str) -> dict[str, Any]:
    """One command of the operator's, in this process, on ``settings``' data set."""
    env = environment(settings) | {"FILE_MIRROR": "true"}
    result = CliRunner().invoke(main, [*arguments, "--json"], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def _fsck(settings: Settings) -> dict[str, Any]:
    return _cli(settings, "fsck", "--grace-minutes", "0")
