"""The start-up warning of ADR 0032's decision 8: search and the subject lookup are not
indexed under row-level security unless ``crucible_lookup`` owns their functions."""

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.settings import load_settings
from tests.row_security import functions_owned_by_lookup
from tests.services import RoleUrls, beneath_row_security, owned_postgres_database

pytestmark = pytest.mark.postgres
WARNING = "not indexed under row-level security"


@pytest.fixture
def database() -> Iterator[RoleUrls]:
    """Migrated by an owner that is no member of ``crucible_lookup``: the functions stay
    the caller's."""
    with owned_postgres_database() as urls:
        yield urls


def _start_warnings(urls: RoleUrls, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> str:
    settings = load_settings(
        {},
        database={"url": urls.service, "migration_url": urls.owner},
        storage={"file_storage_path": tmp_path / "files"},
    )
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="storage_service"),
        TestClient(create_app(settings)),
    ):
        pass
    return caplog.text


def test_the_service_says_once_when_the_lookups_are_unindexed(
    database: RoleUrls, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert _start_warnings(database, tmp_path, caplog).count(WARNING) == 1

    functions_owned_by_lookup(beneath_row_security(database.owner))

    assert WARNING not in _start_warnings(database, tmp_path, caplog)
