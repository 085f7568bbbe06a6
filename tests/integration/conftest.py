"""The HTTP suite runs on every configuration: embedded (SQLite), the file backend (records
in the file tree, their index beside them) and PostgreSQL + Redis, the service connected
as a role under row-level security."""

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.settings import Settings, StorageBackend, file_index_path, load_settings
from tests.integration.hostile import LIMITS, SEED, THRESHOLDS, Harness
from tests.integration.neighbour import neighboured
from tests.keys import write_keys_file
from tests.s3_server import S3Server, unique_prefix
from tests.services import (
    TEST_REDIS_URL,
    migrated_postgres_database,
    migrated_sqlite,
    owned_postgres_database,
    redis_test_keys,
    serve_in_thread,
)

ClientFactory = Callable[..., TestClient[Any]]

# The HTTP suite's streams see a change within 20 ms rather than the default 100 ms.
FAST_HUB = {"poll_ms": 20}


CONFIGURATIONS = [
    "embedded",
    "file",
    pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
]


@pytest.fixture(params=CONFIGURATIONS)
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for one fresh, migrated data set of the parametrized configuration."""
    yield from configured(request.param, tmp_path)


def configured(name: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings for one fresh, migrated data set of configuration ``name``; ``encrypted``:
    PostgreSQL + Redis with ``ENCRYPTION=on`` (a new keys file) and a sealed metadata key."""
    files = tmp_path / "files"
    if name == "encrypted":
        keys = write_keys_file(tmp_path / "encryption-keys")
        encryption = {"enabled": True, "keys_file": keys, "metadata_keys": ("secret",)}
        for settings in configured("postgres+redis", tmp_path):
            yield settings.changed(encryption=encryption)
        return
    if name == "embedded":
        url = migrated_sqlite(tmp_path / "storage.db")
        yield load_settings(
            {}, database={"url": url}, storage={"file_storage_path": files}, changes=FAST_HUB
        )
        return
    if name == "file":
        settings = load_settings(
            {},
            storage={"backend": StorageBackend.FILE, "file_storage_path": files},
            changes=FAST_HUB,
        )
        # What ``serve`` does to a fresh tree's index: the migrated schema, nothing else.
        migrated_sqlite(file_index_path(files))
        yield settings
        return
    # The service as a role that owns nothing, the migrations as the tables' owner: under
    # row-level security throughout (ADR 0032), as a deployment with both roles runs.
    with redis_test_keys() as prefix, owned_postgres_database() as urls:
        yield load_settings(
            {},
            database={"url": urls.service, "migration_url": urls.owner},
            storage={"file_storage_path": files},
            redis={"url": TEST_REDIS_URL, "key_prefix": prefix},
            changes=FAST_HUB,
        )


@pytest.fixture
def migrated_url() -> Iterator[str]:
    """A migrated PostgreSQL database of its own per test: nothing of another test's is
    there, not even planner statistics, which outlive a TRUNCATE."""
    with migrated_postgres_database() as url:
        yield url


@pytest.fixture
def make_client(
    backend_settings: Settings, request: pytest.FixtureRequest
) -> Iterator[ClientFactory]:
    """Start the app on the current data set, with optional setting overrides; its writes
    reach a neighbour tenant first (tests/integration/neighbour.py) unless the test is
    marked ``alone``."""
    alone = request.node.get_closest_marker("alone") is not None
    with ExitStack() as started:

        def factory(**overrides: Any) -> TestClient[Any]:
            settings = backend_settings.changed(**overrides)
            return started.enter_context(neighboured(settings, alone=alone))

        yield factory


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient[Any]:
    return make_client()


@pytest.fixture
def s3_env(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment of one service on SQLite, with S3 set up (blob backend chosen later)."""
    database = migrated_sqlite(tmp_path / "storage.db")
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)  # the in-process app reads credentials from here
    return {
        **s3_server.env(),
        "DATABASE_URL": database,
        "FILE_STORAGE_PATH": str(tmp_path / "files"),
        "S3_BUCKET": s3_bucket,
        "S3_PREFIX": unique_prefix(),
        "LOG_LEVEL": "WARNING",
    }


def client_of(env: dict[str, str], *, alone: bool = False) -> Iterator[TestClient[Any]]:
    """The app on ``env``, started for as long as the caller iterates, beside its
    neighbour tenant unless ``alone`` (tests/integration/neighbour.py)."""
    with neighboured(load_settings(env), alone=alone) as client:
        yield client


@pytest.fixture
def app_server(backend_settings: Settings) -> Iterator[str]:
    """The app behind a real uvicorn server in a thread; yields its base URL."""
    with serve_in_thread(create_app(backend_settings)) as base:
        yield base


@pytest.fixture
def hostile(make_client: ClientFactory, backend_settings: Settings, tmp_path: Path) -> Harness:
    """A seeded app of its own, for the hostile-input tests that write."""
    return seeded(make_client(limits=LIMITS, storage=THRESHOLDS), backend_settings, tmp_path)


@pytest.fixture(scope="module", params=CONFIGURATIONS)
def shared_hostile(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    """One seeded app per module and configuration, for the tests that must change nothing.

    Each of them checks its own before and after (``unchanged``), so sharing the app and
    its data set cannot hide a change: the test that made it fails.
    """
    tmp_path = tmp_path_factory.mktemp("hostile")
    for settings in configured(request.param, tmp_path):
        with neighboured(settings.changed(limits=LIMITS, storage=THRESHOLDS)) as client:
            yield seeded(client, settings, tmp_path)


def seeded(client: TestClient[Any], settings: Settings, tmp_path: Path) -> Harness:
    """The hostile-input harness on ``client``, after writing the seed record."""
    harness = Harness(client, settings, tmp_path)
    created = client.post(
        "/evaluations", json={"id": SEED, "code": "print(1)", "metadata": {"k": "v"}}
    )
    assert created.status_code == 200, created.text
    for request in [
        ("PUT", {"status": "running", "container_id": "c-1"}),
        ("PUT", {"output": "o" * 5000, "error": "e"}),  # the output lives in a file
    ]:
        assert client.put(f"/evaluations/{SEED}", json=request[1]).status_code == 200
    assert client.post(f"/evaluations/{SEED}/logs", json={"content": "step 1\n"}).status_code == 200
    assert client.post(f"/evaluations/{SEED}/events", json={"type": "t"}).status_code == 200
    assert any(harness.files.rglob("output.*")), "the seed's output should be a file"
    return harness


@pytest.fixture
def unchanged(shared_hostile: Harness) -> Iterator[Harness]:
    """Fails the test when anything stored changed between its start and its end."""
    before = shared_hostile.state()
    yield shared_hostile
    assert shared_hostile.state() == before
