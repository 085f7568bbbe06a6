"""Fixtures of the end-to-end tests that stop and start servers of their own."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg_server import PgServer, throwaway_postgres

# The harness's asserts (tests/e2e/harness.py) explain their failures like a test's own.
pytest.register_assert_rewrite("tests.e2e.harness")


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PgServer]:
    """A PostgreSQL of this test's own, started; its log is kept in ``tmp_path``."""
    with throwaway_postgres(tmp_path) as server:
        yield server
