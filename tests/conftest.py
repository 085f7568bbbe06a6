"""Fixtures every test directory shares."""

from collections.abc import Iterator

import pytest

# A local 3-master Redis Cluster (redis_cluster), for the cluster contract suites.
from tests.redis_cluster import redis_cluster  # noqa: F401

# SeaweedFS fixtures (s3_server, s3_bucket, s3_store), shared by the S3 tests.
from tests.s3_server import s3_bucket, s3_raw_store, s3_server, s3_store  # noqa: F401
from tests.services import drop_templates


@pytest.hookimpl(trylast=True)  # after pytest's own grouping by fixture parameters
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long scenarios (marked ``e2e`` or ``slow``: real server processes, restarts,
    outages) first, in their own order. Under xdist the first batch of tests goes to one
    process, so they run there one after another, early, beside the short tests of the
    other processes, rather than last with nothing left to run beside them."""
    long = [
        item for item in items if item.get_closest_marker("e2e") or item.get_closest_marker("slow")
    ]
    if long:
        chosen = {id(item) for item in long}
        items[:] = long + [item for item in items if id(item) not in chosen]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop the service itself runs on."""
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def _migrated_templates() -> Iterator[None]:
    """Removes this process's migrated templates (tests.services) once its tests are done."""
    yield
    drop_templates()
