"""The optional background tiering task: with ``TIER_AFTER_DAYS`` and ``TIER_INTERVAL_S``
the service itself moves outputs whose file is older than that to S3 (SeaweedFS here),
with files as the blob backend (``BLOB_BACKEND=file``) and S3 as the tier below.
"""

import os
import time
from pathlib import Path

import pytest

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
