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


def _seed(client: TestClient[Any], count: int) -> list[str]:
    """``count`` evaluations ``wh-000``…, two with a large output or an error; their ids."""
    for n in range(count):
        body = {"id": f"wh-{n:03d}", "code": f"print({n})", "metadata": {"user": "ann", "n": n}}
        assert client.post("/evaluations", json=body).status_code == 200
    assert client.put("/evaluations/wh-000", json={"status": "running", "output": BIG}).is_success
    assert client.put("/evaluations/wh-001", json={"status": "failed", "error": "boom"}).is_success
    return [f"wh-{n:03d}" for n in range(count)]


def _wait_for_feed(client: TestClient[Any], after: str, count: int) -> None:
    """Until the feed shows ``count`` changes after ``after``: on PostgreSQL it shows a
    change once every older transaction of the cluster (other tests' too) has ended."""
    deadline = time.monotonic() + 30
    while len(client.get("/changes", params={"after": after}).json()["items"]) < count:
        assert time.monotonic() < deadline, "the changes never reached the feed"
        time.sleep(0.05)


def _export(settings: Settings, root: Path, *args: str) -> Any:
    """``export --format parquet --to root ARGS --json``: the run's manifest."""
    return cli_json(settings, "export", "--format", "parquet", "--to", str(root), *args)


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

    manifest = _export(backend_settings, root)

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
    first = _export(backend_settings, lake)

    assert client.put("/evaluations/wh-002", json={"status": "completed"}).is_success
    assert client.delete("/evaluations/wh-003").is_success
    assert client.post("/evaluations", json={"id": "wh-new", "code": "1"}).is_success
    assert client.post("/evaluations/wh-004/logs", json={"content": "x\n"}).is_success
    _wait_for_feed(client, first["cursor"], 4)
    second = _export(backend_settings, lake, "--since", "last")
    third = _export(backend_settings, lake, "--since", "last")
    _export(backend_settings, fresh)

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


EVENTS_LATEST = """
SELECT DISTINCT ON (evaluation_id, event_id) * EXCLUDE (change_cursor)
FROM read_parquet('{root}/events/*/*.parquet', hive_partitioning = true)
ORDER BY evaluation_id, event_id
"""
LOGS_TEXT = """
SELECT evaluation_id, string_agg(content, '' ORDER BY byte_offset) AS log
FROM (SELECT DISTINCT evaluation_id, byte_offset, content
      FROM read_parquet('{root}/logs/*/*.parquet', hive_partitioning = true))
GROUP BY evaluation_id ORDER BY evaluation_id
"""
ALL_TABLES = ("--tables", "evaluations,events,logs")


def _timelines(client: TestClient[Any], ids: list[str]) -> None:
    for n, evaluation_id in enumerate(ids):
        for k in range(2):
            event = {"type": f"step-{k}", "message": f"{evaluation_id} {k}", "metadata": {"k": k}}
            assert client.post(f"/evaluations/{evaluation_id}/events", json=event).is_success
        for line in (f"{evaluation_id} first\n", f"ünï {n}\n"):
            response = client.post(f"/evaluations/{evaluation_id}/logs", json={"content": line})
            assert response.is_success


def _query(sql: str) -> list[dict[str, Any]]:
    relation = duckdb.sql(sql)
    assert relation is not None
    rows: list[dict[str, Any]] = relation.df().to_dict("records")
    return rows


def _assert_timelines_match_api(client: TestClient[Any], root: Path, ids: list[str]) -> None:
    """Every event and every log of ``ids`` as the API gives them, and nothing else."""
    events = _query(EVENTS_LATEST.format(root=root))
    api_events = sorted(
        (event for i in ids for event in client.get(f"/evaluations/{i}/events").json()),
        key=lambda event: (event["evaluation_id"], event["event_id"]),
    )
    assert [(e["evaluation_id"], e["event_id"]) for e in events] == [
        (e["evaluation_id"], e["event_id"]) for e in api_events
    ]
    for row, api in zip(events, api_events, strict=True):
        assert (row["event_type"], row["message"]) == (api["type"], api["message"])
        assert json.loads(row["metadata"]) == api["metadata"]
        assert _same_instant(row["timestamp"], api["timestamp"])
        assert str(row["date"])[:10] == api["timestamp"][:10]
    logs = {row["evaluation_id"]: row["log"] for row in _query(LOGS_TEXT.format(root=root))}
    api_logs = {i: client.get(f"/evaluations/{i}/logs").json()["content"] for i in ids}
    assert logs == {i: text for i, text in api_logs.items() if text}


def test_events_and_logs_tables_read_back_equal_to_the_api(
    client: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    ids = _seed(client, 4)
    _timelines(client, ids[:3])
    root = tmp_path / "lake"

    manifest = _export(backend_settings, root, *ALL_TABLES)

    assert manifest["tables"] == ["evaluations", "events", "logs"]
    assert (manifest["rows"], manifest["events"], manifest["logs"]) == (4, 6, 6)
    assert {name.split("/", 1)[0] for name in manifest["files"]} == set(manifest["tables"])
    _assert_timelines_match_api(client, root, ids)
    frame = pd.read_parquet(root / "logs")
    assert {"date", "evaluation_id", "byte_offset", "size", "content", "created_at"} <= set(
        frame.columns
    )
    assert all(frame["size"] == frame["content"].map(lambda text: len(text.encode())))


def test_incremental_events_and_logs_agree_with_a_full_export(
    client: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    ids = _seed(client, 5)
    _timelines(client, ids[:2])
    _wait_for_feed(client, "0-0", 7 + 8)
    lake, fresh = tmp_path / "lake", tmp_path / "fresh"
    first = _export(backend_settings, lake, *ALL_TABLES)

    _timelines(client, ids[1:3])  # one more timeline, one grown
    assert client.delete("/evaluations/wh-004").is_success
    _wait_for_feed(client, first["cursor"], 9)
    second = _export(backend_settings, lake, "--since", "last")
    _export(backend_settings, fresh, *ALL_TABLES)

    assert second["tables"] == first["tables"]  # continued without being asked again
    assert (second["events"], second["logs"]) == (6, 6)  # the two changed timelines, whole
    for root in (lake, fresh):
        _assert_timelines_match_api(client, root, ids[:4])
    incremental = _query(EVENTS_LATEST.format(root=lake))
    assert incremental == _query(EVENTS_LATEST.format(root=fresh))


def test_tables_that_are_unknown_or_new_to_an_incremental_run_are_refused(
    client: TestClient[Any], backend_settings: Settings, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    _seed(client, 2)
    parquet = ("export", "--format", "parquet", "--to", str(lake))
    unknown = cli(backend_settings, *parquet, "--tables", "runs", expect=2).output
    _export(backend_settings, lake)
    new = cli(
        backend_settings, *parquet, "--since", "last", "--tables", "evaluations,logs", expect=1
    ).output
    jsonl = cli(backend_settings, "export", "--tables", "events", expect=2).output

    assert "--tables" in unknown and "evaluations, events, logs" in unknown
    assert "tables" in new and "did not export logs" in new
    assert "--tables" in jsonl
    assert len(_manifests(lake)) == 1


def test_events_and_logs_of_a_filter_download_as_parquet(client: TestClient[Any]) -> None:
    _seed(client, 3)
    _timelines(client, ["wh-000", "wh-001", "wh-002"])

    events = client.get("/export/events.parquet", params={"status": "failed"})
    logs = client.get("/export/logs.parquet")

    assert events.status_code == 200, events.text
    assert events.headers["content-type"] == "application/vnd.apache.parquet"
    assert 'filename="events.parquet"' in events.headers["content-disposition"]
    frame = pd.read_parquet(io.BytesIO(events.content))
    api = client.get("/evaluations/wh-001/events").json()
    assert sorted(frame["event_id"]) == sorted(event["event_id"] for event in api)
    assert set(frame["evaluation_id"]) == {"wh-001"}
    pieces = pd.read_parquet(io.BytesIO(logs.content)).sort_values(["evaluation_id", "byte_offset"])
    for evaluation_id, part in pieces.groupby("evaluation_id"):
        expected = client.get(f"/evaluations/{evaluation_id}/logs").json()["content"]
        assert "".join(part["content"]) == expected
    assert set(pieces["evaluation_id"]) == {"wh-000", "wh-001", "wh-002"}
    refused = client.get("/export/logs.parquet", params={"status": "sleeping"})
    assert refused.status_code in (400, 422) and "status" in refused.text


def test_a_table_added_to_the_schedule_starts_over_with_a_full_run(
    make_client: ClientFactory, backend_settings: Settings, tmp_path: Path
) -> None:
    lake = tmp_path / "scheduled"
    writer = make_client()
    _seed(writer, 2)
    _timelines(writer, ["wh-000"])
    _export(backend_settings, lake)
    make_client(export={"to": str(lake), "interval_s": 0.2, "tables": ("evaluations", "events")})

    deadline = time.monotonic() + 30
    while len(_manifests(lake)) < 2:
        assert time.monotonic() < deadline, _manifests(lake)
        time.sleep(0.05)

    scheduled = _manifests(lake)[1]
    assert scheduled["since"] is None and scheduled["tables"] == ["evaluations", "events"]
    assert (scheduled["rows"], scheduled["events"]) == (2, 2)
