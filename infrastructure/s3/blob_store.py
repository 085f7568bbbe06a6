"""Blobs as objects in an S3 bucket (AWS S3 or any S3-compatible server).

The object key is ``S3_PREFIX`` + the blob key. Keys are checked exactly as the
file store checks them. Keys ending in ``.zst`` hold one zstd frame, as in the
file store, so an object can move between the two stores byte for byte.

A ``put`` is atomic by S3's own rule: an object appears whole once its
``PutObject`` or ``CompleteMultipartUpload`` succeeds, and never before. A
streamed put sends parts of ``PART_SIZE`` bytes (compressed on the way), holding
at most one part in memory; a stream that fails aborts its multipart upload,
so the previous object under the key stays as it was.
"""

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import anyio.to_thread
import zstandard
from aiohttp import ClientError as HttpClientError
from botocore.exceptions import BotoCoreError, ClientError
from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

from application.backends import Backend
from application.errors import BackendUnavailableError, BlobMissingError
from application.ports.backend_inspector import BackendInspector
from application.ports.blob_store import BlobEntry, BlobStore
from application.ports.blob_urls import BlobUrls, SignedUrl
from application.queries import BackendReport, MetricValue
from domain.blob_paths import parse_blob_path
from domain.tenancy import qualified_id
from infrastructure.files.blob_store import COMPRESSION_LEVEL, check_stream_range, compressed
from infrastructure.files.keys import check_blob_key, is_compressed_key
from infrastructure.metrics import blob_bytes, timed
from infrastructure.s3.client import BACKEND, S3Connection, error_code, s3_error

logger = logging.getLogger(__name__)

# S3 wants every part but the last to be at least 5 MiB; 8 MiB keeps requests few.
PART_SIZE = 8 * 1024 * 1024
# Compressed bytes fed to the decompressor at a time: bounds what one step can expand to.
_DECOMPRESS_STEP = 16 * 1024
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_DRIVER_ERRORS = (BotoCoreError, HttpClientError, OSError)


class S3BlobStore(BlobStore):
    """``BlobStore`` on one bucket under one prefix."""

    def __init__(
        self, connection: S3Connection, prefix: str = "", *, compress: bool = True
    ) -> None:
        """``compress=False``: ``.zst`` keys are stored as given (``SealedBlobStore``
        compresses before it seals)."""
        self._compress = compress
        self._connection = connection
        self._bucket = connection.bucket
        self._prefix = prefix

    def _compresses(self, key: str) -> bool:
        return self._compress and is_compressed_key(key)

    def object_key(self, key: str) -> str:
        check_blob_key(key)
        return self._prefix + key

    async def put(self, key: str, data: bytes) -> int:
        name = self.object_key(key)
        body = bytes(data)
        if self._compresses(key):
            body = await compressed(body)
        try:
            with timed(BACKEND, "put"):
                await self._connection.client.put_object(Bucket=self._bucket, Key=name, Body=body)
        except (ClientError, *_DRIVER_ERRORS) as exc:
            logger.warning("s3: cannot write %s: %s", key, exc)
            raise s3_error(exc) from exc
        blob_bytes("written", len(body))
        return len(body)

    async def get(self, key: str) -> bytes:
        parts = [chunk async for chunk in self.stream(key, chunk_size=PART_SIZE)]
        return b"".join(parts)

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        name = self.object_key(key)
        upload = _MultipartUpload(self._connection, name)
        compressor = (
            zstandard.ZstdCompressor(level=COMPRESSION_LEVEL).compressobj()
            if self._compresses(key)
            else None
        )
        buffer = bytearray()
        try:
            async for chunk in chunks:
                buffer += compressor.compress(chunk) if compressor is not None else chunk
                while len(buffer) >= PART_SIZE:
                    await upload.send(bytes(buffer[:PART_SIZE]))
                    del buffer[:PART_SIZE]
            if compressor is not None:
                buffer += compressor.flush()
            written = await upload.finish(bytes(buffer))
        except BaseException:
            # The stream (or S3) failed: nothing was completed, the old object stays.
            with anyio.CancelScope(shield=True):
                await upload.abort()
            raise
        blob_bytes("written", written)
        return written

    async def stream(
        self, key: str, chunk_size: int = 65_536, start: int = 0
    ) -> AsyncIterator[bytes]:
        check_stream_range(chunk_size, start)
        if not self._compresses(key):
            # A ranged GET: only the bytes from ``start`` on cross the network.
            async for chunk in self._object_chunks(key, chunk_size, start):
                blob_bytes("read", len(chunk))
                yield chunk
            return
        decompressor = zstandard.ZstdDecompressor().decompressobj()
        skip = start
        async for piece in self._object_chunks(key, _DECOMPRESS_STEP):
            try:
                data = decompressor.decompress(piece)
            except zstandard.ZstdError as exc:
                raise BackendUnavailableError(BACKEND, f"blob '{key}' is corrupt: {exc}") from exc
            if skip:
                dropped = min(skip, len(data))
                data = data[dropped:]
                skip -= dropped
            for offset in range(0, len(data), chunk_size):
                part = data[offset : offset + chunk_size]
                blob_bytes("read", len(part))
                yield part

    async def stream_stored(self, key: str, chunk_size: int = 65_536) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        async for chunk in self._object_chunks(key, chunk_size):
            yield chunk

    async def stored_size(self, key: str) -> int:
        name = self.object_key(key)
        try:
            head = await self._connection.client.head_object(Bucket=self._bucket, Key=name)
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                raise BlobMissingError(key) from None
            raise s3_error(exc) from exc
        except _DRIVER_ERRORS as exc:
            raise s3_error(exc) from exc
        return int(head["ContentLength"])

    async def delete(self, key: str) -> None:
        name = self.object_key(key)
        try:
            await self._connection.client.delete_object(Bucket=self._bucket, Key=name)
        except (ClientError, *_DRIVER_ERRORS) as exc:
            raise s3_error(exc) from exc

    async def entries(self, prefix: str = "") -> AsyncIterator[BlobEntry]:
        paginator = self._connection.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self._bucket, Prefix=self._prefix + prefix)
        try:
            async for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"]
                    yield BlobEntry(
                        key=name[len(self._prefix) :],
                        size=int(item["Size"]),
                        modified_at=item["LastModified"].astimezone(UTC),
                    )
        except (ClientError, *_DRIVER_ERRORS) as exc:
            raise s3_error(exc) from exc

    async def _object_chunks(
        self, key: str, chunk_size: int, start: int = 0
    ) -> AsyncIterator[bytes]:
        """The object's stored bytes from ``start`` on, ``chunk_size`` at most at a time."""
        name = self.object_key(key)
        client = self._connection.client
        try:
            response = (
                await client.get_object(Bucket=self._bucket, Key=name, Range=f"bytes={start}-")
                if start
                else await client.get_object(Bucket=self._bucket, Key=name)
            )
        except ClientError as exc:
            code = error_code(exc)
            if code in _MISSING:
                raise BlobMissingError(key) from None
            if code == "InvalidRange" and start:
                await self.stored_size(key)  # missing → BlobMissingError
                return  # past the end: nothing to send
            raise s3_error(exc) from exc
        except _DRIVER_ERRORS as exc:
            raise s3_error(exc) from exc
        body = response["Body"]
        try:
            while True:
                try:
                    chunk = await body.read(chunk_size)
                except _DRIVER_ERRORS as exc:
                    raise s3_error(exc) from exc
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()


class _MultipartUpload:
    """Parts of one object; started lazily, so a small stream is one ``PutObject``."""

    def __init__(self, connection: S3Connection, name: str) -> None:
        self._client = connection.client
        self._bucket = connection.bucket
        self._name = name
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._written = 0

    async def send(self, part: bytes) -> None:
        try:
            if self._upload_id is None:
                created = await self._client.create_multipart_upload(
                    Bucket=self._bucket, Key=self._name
                )
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            with timed(BACKEND, "upload_part"):
                sent = await self._client.upload_part(
                    Bucket=self._bucket,
                    Key=self._name,
                    UploadId=self._upload_id,
                    PartNumber=number,
                    Body=part,
                )
        except (ClientError, *_DRIVER_ERRORS) as exc:
            raise s3_error(exc) from exc
        self._parts.append({"ETag": sent["ETag"], "PartNumber": number})
        self._written += len(part)

    async def finish(self, last: bytes) -> int:
        try:
            if self._upload_id is None:
                await self._client.put_object(Bucket=self._bucket, Key=self._name, Body=last)
                return len(last)
            if last:
                await self.send(last)
            await self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._name,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except (ClientError, *_DRIVER_ERRORS) as exc:
            raise s3_error(exc) from exc
        self._upload_id = None  # completed: nothing left to abort
        return self._written

    async def abort(self) -> None:
        if self._upload_id is None:
            return
        try:
            await self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._name, UploadId=self._upload_id
            )
        except (ClientError, *_DRIVER_ERRORS) as exc:
            # The lifecycle rule's AbortIncompleteMultipartUpload removes it later.
            logger.warning("s3: cannot abort the upload of %s: %s", self._name, exc)


class S3BlobUrls(BlobUrls):
    """Presigned GET URLs for objects of the blob store (``BlobUrls``)."""

    def __init__(self, store: S3BlobStore, connection: S3Connection, expiry_s: int) -> None:
        self._store = store
        self._connection = connection
        self._expiry_s = expiry_s

    async def signed_get(self, key: str) -> SignedUrl:
        params: dict[str, str] = {
            "Bucket": self._connection.bucket,
            "Key": self._store.object_key(key),
            "ResponseContentType": "text/plain; charset=utf-8",
        }
        if is_compressed_key(key):
            params["ResponseContentEncoding"] = "zstd"
        expires_at = datetime.now(UTC) + timedelta(seconds=self._expiry_s)
        try:
            url = await self._connection.client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=self._expiry_s
            )
        except (ClientError, *_DRIVER_ERRORS) as exc:
            raise s3_error(exc) from exc
        return SignedUrl(
            url=url,
            expires_at=expires_at.replace(microsecond=0),
            content_encoding=params.get("ResponseContentEncoding"),
        )


class S3BlobInspector(BackendInspector):
    """Counts the objects under the prefix and checks the bucket answers."""

    name: str = Backend.FILE  # the blob slot, whatever the store (as the memory inspector)

    def __init__(self, store: S3BlobStore, connection: S3Connection, prefix: str) -> None:
        self._store = store
        self._connection = connection
        self._prefix = prefix

    async def inspect(self, *, detailed: bool = False) -> BackendReport:
        files = total = 0
        evaluations: set[str] = set()
        directories: set[str] = set()
        largest: BlobEntry | None = None
        compressed = 0
        try:
            await self._connection.client.head_bucket(Bucket=self._connection.bucket)
            async for entry in self._store.entries():
                files += 1
                total += entry.size
                compressed += is_compressed_key(entry.key)
                parts = entry.key.split("/")
                path = parse_blob_path(entry.key)
                if path is not None:
                    evaluations.add(qualified_id(path.tenant, path.evaluation_id))
                # The "directories" the keys imply, as a file tree would have them.
                directories.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
                if largest is None or entry.size > largest.size:
                    largest = entry
        except (BackendUnavailableError, ClientError, *_DRIVER_ERRORS) as exc:
            return BackendReport(
                name=self.name,
                type="s3",
                status="unavailable",
                metrics={},
                details={},
                error=str(exc),
            )
        details: dict[str, MetricValue] = {}
        if detailed:
            details["bucket"] = self._connection.bucket
            details["prefix"] = self._prefix
            details["endpoint"] = self._connection.endpoint_url
            details["compressed_files"] = compressed
        return BackendReport(
            name=self.name,
            type="s3",
            status="healthy",
            metrics={
                "files": files,
                "total_size_bytes": total,
                "evaluations": len(evaluations),
                "directories": len(directories),
                "largest_file": None if largest is None else largest.key,
                "largest_file_bytes": None if largest is None else largest.size,
            },
            details=details,
        )
