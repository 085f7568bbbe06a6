"""Outputs in S3 (SeaweedFS) through the API and the CLI: BLOB_BACKEND=s3, presigned
URLs and redirects, tiering from files, the lifecycle rule, cleanup deleting objects."""

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import zstandard
from click.testing import CliRunner, Result
from litestar.testing import TestClient

from infrastructure.s3.client import S3Connection
from infrastructure.s3.lifecycle import read_lifecycle
from interfaces.cli import main
from tests.integration.conftest import client_of
from tests.s3_server import S3Server, open_store

pytestmark = pytest.mark.s3

BIG = "line ✓ of output\n" * 20_000  # > 100 KiB: goes to the blob store, zstd


@pytest.fixture
def s3_client(s3_env: dict[str, str]) -> Iterator[TestClient[Any]]:
    yield from client_of({**s3_env, "BLOB_BACKEND": "s3", "S3_PRESIGN_EXPIRY_S": "120"})


@asynccontextmanager
async def _bucket(env: dict[str, str]) -> AsyncIterator[S3Connection]:
    """A connection to the bucket the service under test writes to."""
    connection = S3Connection(
        bucket=env["S3_BUCKET"],
        endpoint_url=env["S3_ENDPOINT_URL"],
        region=env["S3_REGION"],
    )
    await connection.open()
    try:
        yield connection
    finally:
        await connection.close()


async def _objects(env: dict[str, str]) -> dict[str, int]:
    async with _bucket(env) as connection:
        listed = await connection.client.list_objects_v2(
            Bucket=env["S3_BUCKET"], Prefix=env["S3_PREFIX"]
        )
        return {
            item["Key"].removeprefix(env["S3_PREFIX"]): item["Size"]
            for item in listed.get("Contents", [])
        }


async def _create_bucket(server: S3Server, env: dict[str, str]) -> None:
    connection, _ = await open_store(server, env["S3_BUCKET"], env["S3_PREFIX"])
    await connection.close()


def objects(env: dict[str, str]) -> dict[str, int]:
    return asyncio.run(_objects(env))


def fetch(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def storage_of(client: TestClient[Any], eval_id: str) -> dict[str, Any]:
    body = client.get(f"/evaluations/{eval_id}?include_storage_info=true").json()
    return body["_storage_info"]  # type: ignore[no-any-return]


def test_outputs_live_in_s3_and_read_back_every_way(
    s3_client: TestClient[Any], s3_env: dict[str, str], tmp_path: Path
) -> None:
    client = s3_client
    assert client.post("/evaluations", json={"id": "s3-1", "code": "x"}).status_code == 200
    assert client.put("/evaluations/s3-1", json={"output": BIG}).is_success
    info = storage_of(client, "s3-1")
    assert info["output_location"] == "s3"
    assert info["output_compressed"] is True
    stored = objects(s3_env)
    keys = sorted(stored)
    assert keys[0] == "evaluations/s3-1/metadata.json"
    assert keys[1].startswith("evaluations/s3-1/output.") and keys[1].endswith(".txt.zst")
    assert not (tmp_path / "files").exists() or not any((tmp_path / "files").rglob("*.zst"))

    data = BIG.encode()
    whole = client.get("/evaluations/s3-1/output", headers={"Accept-Encoding": "identity"})
    assert whole.content == data
    assert whole.headers["x-storage-location"] == "s3"
    ranged = client.get("/evaluations/s3-1/output", headers={"Range": "bytes=1000-1999"})
    assert ranged.status_code == 206
    assert ranged.content == data[1000:2000]
    passed = client.get("/evaluations/s3-1/output", headers={"Accept-Encoding": "zstd"})
    assert passed.headers["content-encoding"] == "zstd"
    assert passed.headers["content-length"] == str(stored[keys[1]])
    complete = client.get("/evaluations/s3-1/complete").json()
    assert complete["evaluation"]["output"] == BIG
    assert complete["storage_locations"]["output"].startswith("s3://")

    # A raw upload streams to S3 the same way.
    upload = client.put(
        "/evaluations/s3-1/output", content=data * 3, headers={"Content-Type": "text/plain"}
    )
    assert upload.is_success, upload.text
    assert upload.json()["_storage_info"]["output_location"] == "s3"
    assert client.get("/evaluations/s3-1/output").content == data * 3
    outputs = [k for k in objects(s3_env) if "/output." in k and not k.startswith("tenants/")]
    assert len(outputs) == 1  # the old one is gone (the neighbour tenant's are its own)

    # The presigned URL serves the stored (zstd) object, and nothing else.
    link = client.get("/evaluations/s3-1/output-url")
    assert link.status_code == 200, link.text
    body = link.json()
    assert set(body) == {"url", "expires_at", "content_encoding"}
    assert body["content_encoding"] == "zstd"
    status, raw, headers = fetch(body["url"])
    assert status == 200
    assert headers.get("Content-Encoding") == "zstd"
    assert zstandard.ZstdDecompressor().stream_reader(raw).read() == data * 3
    status, _, _ = fetch(body["url"].replace("/output.", "/outpux."))
    assert status == 403
    redirect = client.get("/evaluations/s3-1/output?redirect=true", follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"].split("?")[0] == body["url"].split("?")[0]


def test_output_url_answers_404_and_409_where_no_object_exists(
    s3_client: TestClient[Any],
) -> None:
    client = s3_client
    assert client.get("/evaluations/nope/output-url").status_code == 404
    client.post("/evaluations", json={"id": "small", "code": "x"})
    empty = client.get("/evaluations/small/output-url")
    assert empty.status_code == 404
    assert empty.json()["type"].endswith("/no-output")
    client.put("/evaluations/small", json={"output": "short"})
    inline = client.get("/evaluations/small/output-url")
    assert inline.status_code == 409
    assert inline.headers["content-type"].startswith("application/problem+json")
    assert inline.json()["location"] == "inline"
    # redirect=true for content not in S3 is served here.
    served = client.get("/evaluations/small/output?redirect=true", follow_redirects=False)
    assert served.status_code == 200
    assert served.content == b"short"


def cli(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_tier_moves_old_file_outputs_to_s3_and_reads_keep_working(
    s3_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**s3_env, "BLOB_BACKEND": "file"}
    files = tmp_path / "files"
    for client in client_of(env):
        for name in ("old-1", "old-2", "young"):
            client.post("/evaluations", json={"id": name, "code": "x"})
            client.put(f"/evaluations/{name}", json={"output": BIG + name})
        assert storage_of(client, "old-1")["output_location"] == "file"
        link = client.get("/evaluations/old-1/output-url")
        assert link.status_code == 409
        assert link.json()["location"] == "file"
        then = time.time() - 10 * 86_400
        for name in ("old-1", "old-2"):
            for path in (files / "evaluations" / name).glob("output.*"):
                os.utime(path, (then, then))

        dry = json.loads(cli(env, "tier", "--older-than-days", "7", "--dry-run", "--json").stdout)
        assert dry["moved"] == 2
        assert not objects(env)
        report = json.loads(cli(env, "tier", "--older-than-days", "7", "--json").stdout)
        assert report["moved"] == 2
        assert report["moved_bytes"] > 0

        for name in ("old-1", "old-2"):
            # Content reads go to the database, never the (in-process) record cache.
            assert client.get(f"/evaluations/{name}/output").content == (BIG + name).encode()
            assert not list((files / "evaluations" / name).glob("output.*"))
    for client in client_of(env):  # a fresh process: the CLI cannot reach the old one's cache
        for name in ("old-1", "old-2"):
            assert storage_of(client, name)["output_location"] == "s3"
        assert storage_of(client, "young")["output_location"] == "file"
        assert sorted(k for k in objects(env) if "/output." in k)[0].startswith(
            "evaluations/old-1/output."
        )
        assert client.get("/evaluations/old-1/output-url").status_code == 200
        again = json.loads(cli(env, "tier", "--older-than-days", "7", "--json").stdout)
        assert again["moved"] == 0

        # Cleanup removes the evaluation with its objects in S3 (and its files).
        client.put("/evaluations/old-1", json={"status": "completed"})
        assert client.delete("/evaluations/old-1").status_code == 200
        time.sleep(1.5)
        cli(env, "cleanup", "--older-than", "1s", "--include-deleted", "--json")
        assert not [k for k in objects(env) if k.startswith("evaluations/old-1/")]
        assert [k for k in objects(env) if k.startswith("evaluations/old-2/")]


def test_lifecycle_rule_is_set_for_the_prefix(s3_server: S3Server, s3_env: dict[str, str]) -> None:
    # The command configures a bucket that exists (the service creates it when it starts);
    # this test may be the first of its process to use the bucket.
    asyncio.run(_create_bucket(s3_server, s3_env))
    rule = json.loads(cli(s3_env, "s3-lifecycle", "--expire-days", "400", "--json").stdout)
    assert rule["Filter"] == {"Prefix": s3_env["S3_PREFIX"]}
    assert rule["Expiration"] == {"Days": 400}

    async def rules() -> list[dict[str, Any]]:
        async with _bucket(s3_env) as connection:
            return await read_lifecycle(connection)

    mine = [r for r in asyncio.run(rules()) if r.get("ID") == rule["ID"]]
    assert len(mine) == 1
    assert mine[0]["Expiration"]["Days"] == 400
    # Applying again replaces the rule rather than adding a second one.
    cli(s3_env, "s3-lifecycle", "--expire-days", "500", "--json")
    mine = [r for r in asyncio.run(rules()) if r.get("ID") == rule["ID"]]
    assert [r["Expiration"]["Days"] for r in mine] == [500]
