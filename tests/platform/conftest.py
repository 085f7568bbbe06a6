"""The platform suite: each call built as the Crucible platform's client builds it.

Runs on every configuration of the HTTP suite (embedded, the file backend, PostgreSQL +
Redis), and once more on PostgreSQL + Redis with ``ENCRYPTION=on``: the platform's calls
must not notice that what they store is sealed.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from interfaces.settings import Settings
from tests.integration.conftest import CONFIGURATIONS, client, configured, make_client

__all__ = ["backend_settings", "client", "make_client"]


@pytest.fixture(
    params=[
        *CONFIGURATIONS,
        pytest.param("encrypted", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    yield from configured(request.param, tmp_path)
