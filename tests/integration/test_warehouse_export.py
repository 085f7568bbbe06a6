"""``export --format parquet``: files DuckDB and pandas read, equal to the API row by row,
and incremental runs that agree with a full one; embedded and PostgreSQL + Redis."""

import io
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.fs as pafs
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from interfaces.cli import main
from interfaces.http.warehouse import _turn
from interfaces.settings import Settings
from tests.integration.conftest import ClientFactory
from tests.integration.test_cli_fsck import environment
from tests.integration.test_cli_maintenance import cli, cli_json
from tests.s3_server import S3Server, unique_prefix

LATEST = """
SELECT * EXCLUDE (rank) FROM (
  SELECT *, row_number() OVER (PARTITION BY id ORDER BY change_cursor DESC) AS rank
  FROM read_parquet('{root}/evaluations/*/*.parquet', hive_partitioning = true)
) WHERE rank = 1 AND NOT deleted ORDER BY id
"""
BIG = "z" * 150_000


def _seed(client: TestClient[Any], count: int) -> None:
    for n in range(count):
        body = {"id": f"wh-{n:03d}", "code": f"print({n})", "metadata": {"user": "ann", "n": n}}
        assert client.post("/evaluations", json=body).status_code == 200
    assert client.put("/evaluations/wh-000", json={"status": "running", "output": BIG}).is_success
    assert client.put("/evaluations/wh-001", json={"status": "failed", "error": "boom"}).is_success


def _wait_for_feed(client: TestClient[Any], after: str, count: int) -> None:
    """Until the feed shows ``count`` changes after ``after``: on PostgreSQL it shows a
    change once every older transaction of the cluster (other tests' too) has ended."""
    deadline = time.monotonic() + 30
    while len(client.get("/changes", params={"after": after}).json()["items"]) < count:
        assert time.monotonic() < deadline, "the changes never reached the feed"
        time.sleep(0.05)


def _latest(root: Path) -> list[dict[str, Any]]:
    relation = duckdb.sql(LATEST.format(root=root))
    assert relation is not None
    rows: list[dict[str, Any]] = relation.df().to_dict("records")
    return rows


def _same_instant(stored: Any, api: str | None) -> bool:
    if api is None:
        return stored is None or pd.isna(stored)
    return bool(pd.Timestamp(stored) == pd.Timestamp(datetime.fromisoformat(api)))


def _assert_matches_api(client: TestClient[Any], row: dict[str, Any]) -> None:
    record = client.get(f"/evaluations/{row['id']}").json()
    assert row["status"] == record["status"]
    assert row["code"] == record["code"]
    assert json.loads(row["metadata"]) == record["metadata"]
    assert row["metadata_user"] == record["metadata"].get("user")
    assert row["version"] == record["version"]
    for name in ("created_at", "updated_at", "started_at", "completed_at"):
        assert _same_instant(row[name], record.get(name)), name
    assert str(row["date"])[:10] == record["created_at"][:10]


def test_a_full_export_reads_back_equal_to_the_api(
    client: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    _seed(client, 30)
    root = tmp_path / "lake"

    manifest = cli_json(backend_settings, "export", "--format", "parquet", "--to", str(root))

    rows = _latest(root)
    assert [row["id"] for row in rows] == [f"wh-{n:03d}" for n in range(30)]
    for row in rows:
        _assert_matches_api(client, row)
    big = next(row for row in rows if row["id"] == "wh-000")
    assert (big["output_size"], big["output_location"], bool(big["output_truncated"])) == (
        len(BIG),
        "file",
        True,
    )
    assert len(big["output"]) < len(BIG)  # the stored preview, not the whole blob
    assert manifest["rows"] == 30 and manifest["tombstones"] == 0
    assert manifest["metadata_columns"] == ["n", "user"]
    assert (root / "_manifests" / f"{manifest['run']}.json").exists()
    assert all((root / name).exists() for name in manifest["files"])
    frame = pd.read_parquet(root / "evaluations")  # pandas, with the Hive partition column
    assert len(frame) == 30
    assert {"date", "status", "metadata_user", "created_at"} <= set(frame.columns)
    assert str(frame["created_at"].dtype).startswith("datetime64")


def test_incremental_runs_agree_with_a_full_export(
    client: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    _seed(client, 12)
    _wait_for_feed(client, "0-0", 14)  # else the full run's cursor is before the seed
    lake, fresh = tmp_path / "lake", tmp_path / "fresh"
    first = cli_json(backend_settings, "export", "--format", "parquet", "--to", str(lake))

    assert client.put("/evaluations/wh-002", json={"status": "completed"}).is_success
    assert client.delete("/evaluations/wh-003").is_success
    assert client.post("/evaluations", json={"id": "wh-new", "code": "1"}).is_success
    assert client.post("/evaluations/wh-004/logs", json={"content": "x\n"}).is_success
    _wait_for_feed(client, first["cursor"], 4)
    second = cli_json(
        backend_settings, "export", "--format", "parquet", "--to", str(lake), "--since", "last"
    )
    third = cli_json(
        backend_settings, "export", "--format", "parquet", "--to", str(lake), "--since", "last"
    )
    cli_json(backend_settings, "export", "--format", "parquet", "--to", str(fresh))

    assert second["since"] == first["cursor"]
    assert (second["rows"], second["tombstones"]) == (3, 1)
    assert (third["rows"], third["tombstones"], third["files"]) == (0, 0, [])
    columns = ["id", "status", "version", "code", "metadata", "output_size"]
    incremental = [{k: row[k] for k in columns} for row in _latest(lake)]
    full = [{k: row[k] for k in columns} for row in _latest(fresh)]
    assert incremental == full
    assert "wh-003" not in {row["id"] for row in incremental}


def test_a_bad_cursor_or_a_missing_destination_is_refused(
    client: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"

    def refused(*args: str) -> str:
        return cli(backend_settings, "export", "--format", "parquet", *args, expect=2).output

    no_to = refused()
    bad = refused("--to", str(lake), "--since", "yesterday")
    nothing_yet = refused("--to", str(lake), "--since", "last")

    assert "--to" in no_to
    assert "--since" in bad
    assert "no finished export" in nothing_yet
    assert not lake.exists() or not any(lake.rglob("*.parquet"))
    assert not (lake / "_manifests").exists()


@pytest.mark.s3
def test_an_export_to_s3_reads_back(
    client: TestClient[Any], backend_settings: Settings, s3_server: S3Server, s3_bucket: str
) -> None:
    _seed(client, 5)
    target = f"s3://{s3_bucket}/{unique_prefix()}warehouse"
    env = {**environment(backend_settings), **s3_server.env()}
    result = CliRunner().invoke(
        main, ["export", "--format", "parquet", "--to", target, "--json"], env=env
    )
    assert result.exit_code == 0, (result.output, result.exception)
    manifest = json.loads(result.output.strip().splitlines()[-1])

    fs = pafs.S3FileSystem(
        endpoint_override=s3_server.endpoint.split("://", 1)[1],
        scheme="http",
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        region=s3_server.region,
    )
    root = target.removeprefix("s3://")
    frame = pd.read_parquet(f"{root}/evaluations", filesystem=fs).sort_values("id")
    assert list(frame["id"]) == [f"wh-{n:03d}" for n in range(5)]
    assert manifest["rows"] == 5
    assert fs.get_file_info(f"{root}/_manifests/{manifest['run']}.json").is_file


def _manifests(root: Path) -> list[dict[str, Any]]:
    directory = root / "_manifests"
    if not directory.exists():
        return []
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]


def test_the_scheduled_export_writes_a_full_run_then_only_changes(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    lake = tmp_path / "scheduled"
    writer = make_client()
    _seed(writer, 4)
    _wait_for_feed(writer, "0-0", 6)  # else the first run's cursor is before the seed
    client = make_client(export={"to": str(lake), "interval_s": 0.2})
    deadline = time.monotonic() + 30
    while not _manifests(lake):
        assert time.monotonic() < deadline, "no scheduled export ran"
        time.sleep(0.05)
    assert client.put("/evaluations/wh-002", json={"status": "completed"}).is_success

    while not any(m["rows"] and m["since"] for m in _manifests(lake)):
        assert time.monotonic() < deadline, _manifests(lake)
        time.sleep(0.05)

    first, *later = _manifests(lake)
    assert (first["since"], first["rows"]) == (None, 4)
    assert sum(m["rows"] for m in later) == 1
    assert [row["status"] for row in _latest(lake) if row["id"] == "wh-002"] == ["completed"]


def test_one_worker_of_a_host_exports_at_a_time(tmp_path: Path) -> None:
    with _turn(tmp_path) as first, _turn(tmp_path) as second:
        assert (first, second) == (True, False)
    with _turn(tmp_path) as again:
        assert again


def test_a_filter_downloads_as_one_parquet_file(client: TestClient[Any]) -> None:
    _seed(client, 6)

    response = client.get("/export/evaluations.parquet")
    failed = client.get("/export/evaluations.parquet", params={"status": "failed"})
    whole = client.get("/export/evaluations.parquet", params={"include": "output"})
    empty = client.get("/export/evaluations.parquet", params={"id_prefix": "nothing-"})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    frame = pd.read_parquet(io.BytesIO(response.content))
    assert list(frame["id"]) == [f"wh-{n:03d}" for n in reversed(range(6))]  # newest first
    for row in frame.to_dict("records"):
        row["date"] = row["created_at"]
        _assert_matches_api(client, row)
    big = frame.set_index("id").loc["wh-000"]
    assert (len(big["output"]) < len(BIG), bool(big["output_truncated"])) == (True, True)
    assert list(pd.read_parquet(io.BytesIO(failed.content))["id"]) == ["wh-001"]
    whole_big = pd.read_parquet(io.BytesIO(whole.content)).set_index("id").loc["wh-000"]
    assert (whole_big["output"], bool(whole_big["output_truncated"])) == (BIG, False)
    assert len(pd.read_parquet(io.BytesIO(empty.content))) == 0


def test_a_bad_filter_is_a_problem_not_a_file(client: TestClient[Any]) -> None:
    response = client.get("/export/evaluations.parquet", params={"include": "everything"})

    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "include" in response.text
