"""What only the S3 adapter does: multipart uploads, presigned URLs, its inspector.

Against SeaweedFS, which checks signatures and expiry like S3 does.
"""

import os
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import pytest
import zstandard

from application.errors import BackendUnavailableError
from infrastructure.s3.blob_store import PART_SIZE, S3BlobInspector, S3BlobStore, S3BlobUrls
from infrastructure.s3.client import S3Connection
from tests.contract.blob_data import SHARED_ID, two_tenants_outputs
from tests.s3_server import S3Server, open_store, unique_prefix

pytestmark = [pytest.mark.anyio, pytest.mark.s3]

KEY = "evaluations/eval_1/output.abc.txt"
ZKEY = "evaluations/eval_1/output.abc.txt.zst"


def _connection(store: S3BlobStore) -> S3Connection:
    return store._connection


async def chunks_of(data: bytes, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _uploads_in_progress(store: S3BlobStore) -> list[str]:
    connection = _connection(store)
    listed = await connection.client.list_multipart_uploads(Bucket=connection.bucket)
    return [upload["Key"] for upload in listed.get("Uploads", [])]


async def test_large_stream_goes_up_in_parts_and_reads_back_by_range(
    s3_store: S3BlobStore,
) -> None:
    data = os.urandom(PART_SIZE * 2 + 12345)
    written = await s3_store.put_stream(KEY, chunks_of(data))
    assert written == len(data) == await s3_store.stored_size(KEY)
    start = PART_SIZE + 7
    got = b"".join([chunk async for chunk in s3_store.stream(KEY, start=start)])
    assert got == data[start:]
    assert KEY not in [key.split("/", 1)[1] for key in await _uploads_in_progress(s3_store)]


async def test_large_compressed_stream_is_one_zstd_frame(s3_store: S3BlobStore) -> None:
    # Random hex compresses about 2:1, so the compressed form spans several parts too.
    data = os.urandom(PART_SIZE * 2).hex().encode()
    written = await s3_store.put_stream(ZKEY, chunks_of(data))
    stored = b"".join([chunk async for chunk in s3_store.stream_stored(ZKEY)])
    assert len(stored) == written > PART_SIZE
    assert zstandard.ZstdDecompressor().stream_reader(stored).read() == data
    tail = b"".join([c async for c in s3_store.stream(ZKEY, start=len(data) - 100)])
    assert tail == data[-100:]


async def test_a_failed_multipart_stream_leaves_the_old_object_and_no_upload(
    s3_store: S3BlobStore,
) -> None:
    await s3_store.put(KEY, b"old content")

    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(PART_SIZE + 1)  # one part sent
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await s3_store.put_stream(KEY, broken())
    assert await s3_store.get(KEY) == b"old content"
    assert await _uploads_in_progress(s3_store) == []


async def _fetch(url: str) -> tuple[int, bytes]:
    def run() -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    return await anyio.to_thread.run_sync(run)


async def test_presigned_url_reads_and_refuses_tampering_and_expiry(
    s3_store: S3BlobStore,
) -> None:
    connection = _connection(s3_store)
    await s3_store.put(KEY, b"the output")
    await s3_store.put("evaluations/eval_1/error.abc.txt", b"another object")

    signed = await S3BlobUrls(s3_store, connection, expiry_s=2).signed_get(KEY)
    assert signed.content_encoding is None
    assert await _fetch(signed.url) == (200, b"the output")

    # Another key under the same signature, or a changed expiry, is refused.
    parts = urlsplit(signed.url)
    other = urlunsplit(parts._replace(path=parts.path.replace("output.abc", "error.abc")))
    assert (await _fetch(other))[0] == 403
    query = dict(parse_qsl(parts.query))
    query["X-Amz-Expires"] = "3600"
    longer = urlunsplit(parts._replace(query=urlencode(query)))
    assert (await _fetch(longer))[0] == 403
    bad_signature = signed.url[:-4] + ("0000" if not signed.url.endswith("0000") else "1111")
    assert (await _fetch(bad_signature))[0] == 403

    await anyio.sleep(3.1)  # past X-Amz-Expires
    status, body = await _fetch(signed.url)
    assert status == 403
    assert b"expired" in body.lower()


async def test_presigned_url_of_a_compressed_object_says_zstd(s3_store: S3BlobStore) -> None:
    data = b"compressible line\n" * 10_000
    await s3_store.put(ZKEY, data)
    signed = await S3BlobUrls(s3_store, _connection(s3_store), expiry_s=60).signed_get(ZKEY)
    assert signed.content_encoding == "zstd"
    status, body = await _fetch(signed.url)
    assert status == 200
    assert zstandard.ZstdDecompressor().stream_reader(body).read() == data


async def test_inspector_counts_objects_under_the_prefix(s3_store: S3BlobStore) -> None:
    await s3_store.put("evaluations/a/output.x.txt.zst", b"a" * 50_000)
    await s3_store.put("evaluations/b/error.x.txt", b"boom")
    inspector = S3BlobInspector(s3_store, _connection(s3_store), s3_store._prefix)
    report = await inspector.inspect(detailed=True)
    assert report.status == "healthy"
    assert report.metrics["files"] == 2
    assert report.metrics["evaluations"] == 2
    assert report.metrics["directories"] == 3  # evaluations/, evaluations/a/, evaluations/b/
    assert report.metrics["largest_file"] == "evaluations/a/output.x.txt.zst"
    assert report.details["compressed_files"] == 1


async def test_each_tenants_objects_have_their_own_prefix(s3_store: S3BlobStore) -> None:
    """In the bucket: the default tenant's under ``evaluations/``, acme's under
    ``tenants/acme/evaluations/`` (ADR 0032)."""
    _, ours, theirs = await two_tenants_outputs(s3_store)
    connection = _connection(s3_store)
    listed = await connection.client.list_objects_v2(
        Bucket=connection.bucket, Prefix=s3_store._prefix
    )
    in_bucket = sorted(item["Key"][len(s3_store._prefix) :] for item in listed["Contents"])
    assert in_bucket == [ours.key, theirs.key]
    assert str(ours.key).startswith(f"evaluations/{SHARED_ID}/")
    assert str(theirs.key).startswith(f"tenants/acme/evaluations/{SHARED_ID}/")
    inspector = S3BlobInspector(s3_store, connection, s3_store._prefix)
    assert (await inspector.inspect()).metrics["evaluations"] == 2


async def test_wrong_credentials_are_refused(s3_server: S3Server, s3_bucket: str) -> None:
    connection, _ = await open_store(s3_server, s3_bucket, unique_prefix())
    await connection.close()
    wrong = S3Connection(
        bucket=s3_bucket,
        endpoint_url=s3_server.endpoint,
        region=s3_server.region,
        access_key_id=s3_server.access_key,
        secret_access_key="not-the-secret-0000000000",
    )
    await wrong.open()
    try:
        store = S3BlobStore(wrong, unique_prefix())
        with pytest.raises(BackendUnavailableError, match="SignatureDoesNotMatch"):
            await store.put(KEY, b"x")
        report = await S3BlobInspector(store, wrong, "").inspect()
        assert report.status == "unavailable"
    finally:
        await wrong.close()


async def test_unreachable_endpoint_is_backend_unavailable(s3_bucket: str) -> None:
    from tests.services import free_port

    connection = S3Connection(
        bucket=s3_bucket,
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region="us-east-1",
        access_key_id="x",
        secret_access_key="y",
        timeout_s=1,
    )
    await connection.open()
    try:
        store = S3BlobStore(connection)
        with pytest.raises(BackendUnavailableError):
            await store.get(KEY)
        with pytest.raises(BackendUnavailableError):
            await store.put(KEY, b"x")
    finally:
        await connection.close()
