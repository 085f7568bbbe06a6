"""A local Redis Cluster for the tests: three masters on free loopback ports.

``redis-server --cluster-enabled yes`` per node, joined by ``redis-cli --cluster
create``; started once per test session (per xdist worker). Without the
binaries the cluster tests skip on a laptop and fail in CI.
"""

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.services import IN_CI, drop_keys_of, free_port_pair, stop_process

NODES = 3
_BUS_OFFSET = 10_000  # a node's cluster bus listens on its port + 10000


def _node_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port, _bus = free_port_pair(_BUS_OFFSET)
        if port not in ports:
            ports.append(port)
    return ports


def require_redis_binaries() -> tuple[str, str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server and cli:
        return server, cli
    message = "redis-server and redis-cli are needed for the Redis Cluster tests"
    if IN_CI:
        pytest.fail(f"{message}; CI must not skip them", pytrace=False)
    pytest.skip(message)


@dataclass
class RedisClusterNodes:
    directory: Path
    ports: list[int]
    server: str
    cli: str
    processes: dict[int, "subprocess.Popen[bytes]"] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """A seed node; the client discovers the others."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, port: int) -> None:
        log = (self.directory / f"node-{port}.log").open("ab")
        self.processes[port] = subprocess.Popen(
            [
                self.server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.directory / f"nodes-{port}.conf"),
                "--cluster-node-timeout",
                "1000",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait(lambda: self._ask(port, "ping") == "PONG", f"node {port} did not start")

    def kill(self, port: int) -> None:
        """SIGKILL: the master disappears without a goodbye (its slots go uncovered)."""
        process = self.processes.pop(port)
        process.kill()
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for port in list(self.processes):
            stop_process(self.processes.pop(port), timeout=10)

    def create(self) -> None:
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [self.cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_healthy()

    def wait_healthy(self) -> None:
        """Every node up and ``cluster_state:ok`` on each (all slots served)."""
        self._wait(
            lambda: all("cluster_state:ok" in self._ask(p, "cluster", "info") for p in self.ports),
            "the cluster did not become healthy",
        )

    def _ask(self, port: int, *command: str) -> str:
        result = subprocess.run(
            [self.cli, "-h", "127.0.0.1", "-p", str(port), *command],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return result.stdout.strip()

    def _wait(self, ready: "object", message: str, timeout_s: float = 30) -> None:
        assert callable(ready)
        deadline = time.monotonic() + timeout_s
        while not ready():
            if time.monotonic() > deadline:
                logs = "\n".join(
                    path.read_text(errors="replace")[-1500:]
                    for path in self.directory.glob("node-*.log")
                )
                pytest.fail(f"{message}:\n{logs}")
            time.sleep(0.1)


@contextmanager
def redis_cluster_nodes(directory: Path) -> Iterator[RedisClusterNodes]:
    server, cli = require_redis_binaries()
    nodes = RedisClusterNodes(directory, _node_ports(NODES), server, cli)
    try:
        for port in nodes.ports:
            nodes.start(port)
        nodes.create()
        yield nodes
    finally:
        nodes.stop_all()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """One 3-master cluster for the run (per xdist worker); tests use key prefixes."""
    with redis_cluster_nodes(tmp_path_factory.mktemp("redis-cluster")) as nodes:
        yield nodes


def cluster_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:10]}:"


async def drop_cluster_keys(prefix: str, url: str) -> None:
    """Delete a test's keys on every master."""
    from redis.asyncio.cluster import RedisCluster

    await drop_keys_of(RedisCluster.from_url(url), prefix)


# The params of a fixture over the Redis adapters (``redis_target`` reads them), and
# of one over the in-process adapter as well.
REDIS_PARAMS = [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis-cluster", marks=pytest.mark.redis_cluster),
]
ADAPTER_PARAMS = ["memory", *REDIS_PARAMS]


def redis_target(request: pytest.FixtureRequest) -> tuple[str, bool, str]:
    """URL, cluster mode and a fresh key prefix for a ``redis``/``redis-cluster`` param."""
    if request.param == "redis-cluster":
        nodes: RedisClusterNodes = request.getfixturevalue("redis_cluster")
        return nodes.url, True, cluster_prefix()
    from tests.services import TEST_REDIS_URL, redis_test_prefix

    return TEST_REDIS_URL, False, redis_test_prefix()


async def drop_keys(prefix: str, url: str, cluster: bool) -> None:
    from tests.services import drop_redis_keys

    await (drop_cluster_keys(prefix, url) if cluster else drop_redis_keys(prefix, url))
