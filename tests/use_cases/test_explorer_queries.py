"""The explorer's use cases: activity per day and one level of the blob tree."""

from datetime import timedelta

import pytest

from application.errors import InvalidRequestError
from application.use_cases import browse_blobs
from application.use_cases.activity import GetActivity
from application.use_cases.browse_blobs import BrowseBlobs, parse_blob_directory
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT, TenantId
from tests.use_cases.conftest import UseCases

pytestmark = pytest.mark.anyio


async def test_activity_counts_each_day_by_current_status(app: UseCases) -> None:
    today = app.clock.now()
    await app.seed(created_at=today, status=EvaluationStatus.COMPLETED)
    await app.seed(created_at=today - timedelta(days=1), status=EvaluationStatus.COMPLETED)
    await app.seed(created_at=today - timedelta(days=1), status=EvaluationStatus.FAILED)
    await app.seed(created_at=today - timedelta(days=5), status=EvaluationStatus.QUEUED)
    gone = await app.seed(created_at=today, status=EvaluationStatus.FAILED)
    gone.deleted_at = today
    await app.repository.update(gone, gone.version)

    activity = await GetActivity(app.queries, app.clock).execute(days=3)

    assert activity.days == [(today - timedelta(days=n)).date() for n in (2, 1, 0)]
    assert list(activity.counts) == [status.value for status in EvaluationStatus]
    assert activity.counts["completed"] == [0, 1, 1]
    assert activity.counts["failed"] == [0, 1, 0]
    assert activity.counts["queued"] == [0, 0, 0]  # five days ago is outside the window
    assert activity.total == 3


async def test_activity_bounds_the_window(app: UseCases) -> None:
    assert len((await GetActivity(app.queries, app.clock).execute(days=0)).days) == 1
    assert len((await GetActivity(app.queries, app.clock).execute(days=10_000)).days) == 366


async def test_browse_lists_one_level_with_directory_totals(app: UseCases) -> None:
    await app.blobs.put("evaluations/a/output.1.txt", b"x" * 10)
    await app.blobs.put("evaluations/a/metadata.json", b"{}")
    await app.blobs.put("evaluations/b/error.2.txt", b"y" * 5)
    browse = BrowseBlobs(app.blobs, [], DEFAULT_TENANT)

    root = await browse.execute("")
    assert [(d.name, d.path, d.files) for d in root.directories] == [
        ("evaluations", "evaluations/", 3)
    ]
    assert root.files == []

    level = await browse.execute("evaluations")
    assert [(d.name, d.files, d.size) for d in level.directories] == [("a", 2, 12), ("b", 1, 5)]

    leaf = await browse.execute("/evaluations/a/")
    assert leaf.path == "evaluations/a/"
    assert [f.name for f in leaf.files] == ["metadata.json", "output.1.txt"]
    assert leaf.crumbs == [("evaluations", "evaluations/"), ("a", "evaluations/a/")]
    assert not leaf.truncated


async def test_browse_pages_a_level_past_max_entries(
    app: UseCases, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browse_blobs, "MAX_ENTRIES", 2)
    for key in ("d/x/1.txt", "d/y/2.txt", "d/z/3.txt", "d/f.txt"):
        await app.blobs.put(key, b"1")
    browse = BrowseBlobs(app.blobs, [], DEFAULT_TENANT)

    first = await browse.execute("d")
    assert [d.name for d in first.directories] == ["x", "y"]
    assert (first.files, first.truncated, first.next_after) == ([], True, "y/")
    rest = await browse.execute("d", first.next_after or "")
    assert ([d.name for d in rest.directories], [f.name for f in rest.files]) == (["z"], ["f.txt"])
    assert (rest.truncated, rest.next_after, rest.totals_measured_at) == (False, None, None)
    with pytest.raises(InvalidRequestError):
        await browse.execute("d", "../x")


@pytest.mark.parametrize(
    "raw", ["..", "../etc", "evaluations/../..", "a\\b", ".hidden", "a/%2e%2e"]
)
async def test_browse_refuses_paths_outside_the_key_space(app: UseCases, raw: str) -> None:
    with pytest.raises(InvalidRequestError):
        await BrowseBlobs(app.blobs, [], DEFAULT_TENANT).execute(raw)


async def test_another_tenant_browses_its_own_directory_only(app: UseCases) -> None:
    """The default tenant's keys see the whole store (the deployment's); another tenant's
    start and stay under ``tenants/<tenant>/`` (ADR 0032)."""
    await app.blobs.put("evaluations/shared/output.1.txt", b"default's")
    await app.blobs.put("tenants/acme/evaluations/shared/output.2.txt", b"acme's")
    await app.blobs.put("tenants/beta/evaluations/shared/output.3.txt", b"beta's")
    acme = BrowseBlobs(app.blobs, [], TenantId("acme"))

    root = await acme.execute("")
    assert (root.path, [d.name for d in root.directories]) == ("tenants/acme/", ["evaluations"])
    leaf = await acme.execute("tenants/acme/evaluations/shared")
    assert [f.name for f in leaf.files] == ["output.2.txt"]
    for elsewhere in ("evaluations", "tenants", "tenants/beta/evaluations", "tenants/acmex"):
        with pytest.raises(InvalidRequestError):
            await acme.execute(elsewhere)
    whole = await BrowseBlobs(app.blobs, [], DEFAULT_TENANT).execute("tenants")
    assert [d.name for d in whole.directories] == ["acme", "beta"]


def test_parse_blob_directory_normalises() -> None:
    assert parse_blob_directory("") == ""
    assert parse_blob_directory(" evaluations//x ") == "evaluations/x/"
