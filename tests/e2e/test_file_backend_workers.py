"""Two service processes of one host share one file tree (``STORAGE_BACKEND=file``).

Client threads drive evaluations through their whole life, each write through either
process in turn, so the two write the same records, events and logs concurrently. Then
every acknowledged write must read back whole through both processes, the copies in the
tree must agree with the index (``fsck`` clean, nothing uncopied), and a new index built
from the tree alone must answer the same.
"""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    HTTP_TIMEOUT_S,
    Client,
    Ledger,
    assert_outputs_served,
    cli_json,
    replicas,
)
from tests.e2e.test_failover import lifecycle_load

pytestmark = [pytest.mark.e2e]

THREADS = 4
LOAD_S = 3.0
_FOREIGN = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "STORAGE_BACKEND",
    "WORKERS",
    "API_KEYS",
)


class Alternating(Client):
    """A client whose writes go through two processes in turn."""

    def __init__(self, bases: tuple[str, str], ledger: Ledger) -> None:
        super().__init__(bases[0], ledger)
        self._others = [httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) for base in bases]
        self._turn = 0

    def write(self, *args: Any, **kwargs: Any) -> httpx.Response | None:
        self._turn ^= 1
        self.http = self._others[self._turn]
        return super().write(*args, **kwargs)

    def close(self) -> None:
        for client in self._others:
            client.close()


def _fsck(env: dict[str, str], *arguments: str) -> dict[str, Any]:
    report: dict[str, Any] = cli_json(env, "fsck", "--json", "--grace-minutes", "0", *arguments)[1]
    return report


def _read_all(base: str, ledger: Ledger) -> None:
    reader = Client(base, ledger)
    try:
        for evaluation_id, expected in ledger.records.items():
            if not expected.deleted:
                reader.read_back(expected, evaluation_id)
                reader.read_timeline(expected, evaluation_id)
    finally:
        reader.close()


def test_two_processes_write_one_tree_and_lose_nothing(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in _FOREIGN} | {
        "STORAGE_BACKEND": "file",
        "FILE_STORAGE_PATH": str(tmp_path / "tree"),
        "ENABLE_CACHING": "false",  # each process's cache is its own: reads go to the index
        "CACHE_WARM_ON_START": "false",
        "LOG_LEVEL": "WARNING",
    }
    logs = (tmp_path / "first.log", tmp_path / "second.log")
    ledger = Ledger()
    subprocess.run(  # the index, made once before two processes open it
        [sys.executable, "-m", "interfaces.cli", "migrate"], env=env, check=True, timeout=120
    )
    with replicas((env, env), logs) as bases:
        with lifecycle_load(lambda: Alternating(bases, ledger), ledger, THREADS):
            time.sleep(LOAD_S)
        ledger.assert_no_failures(*logs)
        assert len(ledger.records) >= THREADS, ledger.answers
        for base in bases:
            _read_all(base, ledger)
            assert_outputs_served(base, ledger)
        ledger.assert_no_failures(*logs)
        refused = subprocess.run(  # the index is never replaced under a serving process
            [sys.executable, "-m", "interfaces.cli", "fsck", "--rebuild-index"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert refused.returncode == 3, refused.stdout + refused.stderr

    report = _fsck(env)
    assert report["clean"] is True, report
    assert report["index"]["uncopied"] == [] and report["index"]["stale"] == [], report

    rebuilt = _fsck(env, "--rebuild-index")  # the index anew, from the tree alone
    assert rebuilt["clean"] is True, rebuilt
    live = sum(1 for expected in ledger.records.values() if not expected.deleted)
    assert rebuilt["index"]["rebuild"]["restored"] == len(ledger.records) >= live
    with replicas((env, env), logs) as bases:
        _read_all(bases[1], ledger)
        assert_outputs_served(bases[1], ledger)
    ledger.assert_no_failures(*logs)
