"""Fixtures every test directory shares."""

import pytest

# A local 3-master Redis Cluster (redis_cluster), for the cluster contract suites.
from tests.redis_cluster import redis_cluster  # noqa: F401

# SeaweedFS fixtures (s3_server, s3_bucket, s3_store), shared by the S3 tests.
from tests.s3_server import s3_bucket, s3_raw_store, s3_server, s3_store  # noqa: F401


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop the service itself runs on."""
    return "asyncio"
