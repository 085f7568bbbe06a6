"""Fixtures every test directory shares."""

from collections.abc import Iterator

import pytest

# A local 3-master Redis Cluster (redis_cluster), for the cluster contract suites.
from tests.redis_cluster import redis_cluster  # noqa: F401

# SeaweedFS fixtures (s3_server, s3_bucket, s3_store), shared by the S3 tests.
from tests.s3_server import s3_bucket, s3_raw_store, s3_server, s3_store  # noqa: F401
from tests.services import drop_templates


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop the service itself runs on."""
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def _migrated_templates() -> Iterator[None]:
    """Removes this process's migrated templates (tests.services) once its tests are done."""
    yield
    drop_templates()
