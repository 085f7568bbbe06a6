"""The optional background tiering task: with ``TIER_AFTER_DAYS`` and ``TIER_INTERVAL_S``
the service itself moves outputs whose file is older than that to S3 (SeaweedFS here),
with files as the blob backend (``BLOB_BACKEND=file``) and S3 as the tier below.
"""

import os
import time
from pathlib import Path

import anyio
import pytest
from dishka import make_async_container

from application.services.payloads import PayloadStore
from domain.payload import PayloadLocation, StoredPayload
from interfaces.http.tiering import run_tiering
from interfaces.providers import build_providers
from interfaces.settings import Settings, load_settings
from tests.integration.conftest import client_of
from tests.integration.test_api_s3 import objects, storage_of

pytestmark = pytest.mark.s3

BIG = "tiered line ✓ of output\n" * 8_000  # > 100 KiB: a file under FILE_STORAGE_PATH
TIER_TIMEOUT_S = 15.0
DAY_S = 86_400


@pytest.fixture
def env(s3_env: dict[str, str]) -> dict[str, str]:
    """One service on SQLite with files as the blob backend and S3 set up for tiering."""
    return {**s3_env, "BLOB_BACKEND": "file", "CACHE_WARM_ON_START": "false"}


def output_files(files: Path, evaluation_id: str) -> list[Path]:
    return sorted((files / "evaluations" / evaluation_id).glob("output.*"))


def test_the_service_tiers_old_file_outputs_to_s3_by_itself(
    env: dict[str, str], tmp_path: Path
) -> None:
    files = tmp_path / "files"
    assert len(BIG.encode()) > 102_400
    # Written by a service without the task: the outputs become files.
    for client in client_of(env):
        for name in ("tier-old", "tier-young"):
            assert client.post("/evaluations", json={"id": name, "code": "x"}).status_code == 200
            written = client.put(f"/evaluations/{name}", json={"output": BIG + name})
            assert written.status_code == 200, written.text
            assert storage_of(client, name)["output_location"] == "file"
    [old_file] = output_files(files, "tier-old")
    [young_file] = output_files(files, "tier-young")
    then = time.time() - 2 * DAY_S
    os.utime(old_file, (then, then))

    tiering = {**env, "TIER_AFTER_DAYS": "1", "TIER_INTERVAL_S": "0.2"}
    for client in client_of(tiering):
        deadline = time.monotonic() + TIER_TIMEOUT_S
        info = storage_of(client, "tier-old")
        while info["output_location"] != "s3" and time.monotonic() < deadline:
            time.sleep(0.1)
            info = storage_of(client, "tier-old")
        assert info["output_location"] == "s3", (
            f"the output was not tiered within {TIER_TIMEOUT_S} s: {info}"
        )

        output = client.get("/evaluations/tier-old/output")
        assert output.status_code == 200
        assert output.content == (BIG + "tier-old").encode()
        assert output.headers["x-storage-location"] == "s3"
        assert not old_file.exists()
        assert output_files(files, "tier-old") == []
        stored = [key for key in objects(env) if key.startswith("evaluations/tier-old/output.")]
        assert stored == [old_file.relative_to(files).as_posix()], stored

        # A file younger than TIER_AFTER_DAYS stays where it is, pass after pass.
        time.sleep(0.5)
        assert storage_of(client, "tier-young")["output_location"] == "file"
        assert output_files(files, "tier-young") == [young_file]
        assert client.get("/evaluations/tier-young/output").content == (BIG + "tier-young").encode()


def test_a_tiering_pass_stops_between_two_payloads_when_the_app_stops(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = tmp_path / "files"
    names = [f"tier-stop-{i}" for i in range(3)]
    for client in client_of(env):
        for name in names:
            assert client.post("/evaluations", json={"id": name, "code": "x"}).status_code == 200
            assert client.put(f"/evaluations/{name}", json={"output": BIG + name}).is_success
    then = time.time() - 2 * DAY_S
    for name in names:
        for path in output_files(files, name):
            os.utime(path, (then, then))
    stopping: anyio.Event | None = None
    move = PayloadStore.move

    async def move_then_stop(
        store: PayloadStore, payload: StoredPayload, target: PayloadLocation
    ) -> StoredPayload:
        copy = await move(store, payload, target)
        assert stopping is not None
        stopping.set()  # the app stops while the first payload is being moved
        return copy

    monkeypatch.setattr(PayloadStore, "move", move_then_stop)

    async def one_pass() -> None:
        nonlocal stopping
        stopping = anyio.Event()
        settings = load_settings(env)
        container = make_async_container(*build_providers(settings), context={Settings: settings})
        try:
            await run_tiering(container, settings, 1, stopping)
        finally:
            await container.close()

    anyio.run(one_pass)

    left = [name for name in names if output_files(files, name)]
    assert len(left) == 2, left  # one moved to S3, the others wait for the next pass


def test_two_passes_at_once_keep_the_object_the_record_points_at(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers tier the same payload: the second pass copies it too, then finds the
    record already switched to the same object, and must leave that object alone."""
    for client in client_of(env):
        assert client.post("/evaluations", json={"id": "tier-race", "code": "x"}).is_success
        assert client.put("/evaluations/tier-race", json={"output": BIG + "race"}).is_success
    then = time.time() - 2 * DAY_S
    for path in output_files(tmp_path / "files", "tier-race"):
        os.utime(path, (then, then))
    settings = load_settings(env)
    move = PayloadStore.move
    passes: list[int] = []

    async def one_pass() -> int:
        passes.append(len(passes))
        container = make_async_container(*build_providers(settings), context={Settings: settings})
        try:
            reports = await run_tiering(container, settings, 1, anyio.Event())
        finally:
            await container.close()
        return sum(report.moved for report in reports.values())

    async def move_while_another_pass_runs(
        store: PayloadStore, payload: StoredPayload, target: PayloadLocation
    ) -> StoredPayload:
        copy = await move(store, payload, target)
        if len(passes) == 1:  # the first pass has copied; a second one runs from start to end
            assert await one_pass() == 1
        return copy

    monkeypatch.setattr(PayloadStore, "move", move_while_another_pass_runs)
    assert anyio.run(one_pass) == 0  # the other pass moved it

    for client in client_of(env):
        output = client.get("/evaluations/tier-race/output")
        assert output.status_code == 200, output.text
        assert output.content == (BIG + "race").encode()
        assert output.headers["x-storage-location"] == "s3"
