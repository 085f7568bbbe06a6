"""Blobs in S3 (with presigned URLs), or files tiered to S3.

A module of its own so that a deployment without S3 never imports its client (most of
a second of every process start, a CLI command's included).
"""

from collections.abc import AsyncIterator

from dishka import Provider, Scope, provide

from application.backends import Backend
from application.ports.blob_store import BlobStore
from application.ports.blob_urls import BlobUrls
from domain.payload import PayloadLocation
from infrastructure.s3.blob_store import S3BlobInspector, S3BlobStore, S3BlobUrls
from infrastructure.s3.client import S3Connection
from infrastructure.s3.no_urls import SealedBlobUrls
from interfaces.providers.blobs import BlobPlacement, sealed_files
from interfaces.providers.keys import BlobInspector
from interfaces.providers.sealing import BlobSeal
from interfaces.settings import Settings


class S3Provider(Provider):
    """The S3 client (opened at start, closed at shutdown), its store and presigned URLs."""

    scope = Scope.APP

    @provide
    async def connection(self, settings: Settings) -> AsyncIterator[S3Connection]:
        assert settings.s3.bucket is not None
        connection = S3Connection(
            bucket=settings.s3.bucket,
            endpoint_url=settings.s3.endpoint_url,
            region=settings.s3.region,
        )
        await connection.open()
        try:
            if settings.s3.create_bucket:
                await connection.ensure_bucket()
            yield connection
        finally:
            await connection.close()

    @provide
    def store(self, connection: S3Connection, settings: Settings, seal: BlobSeal) -> S3BlobStore:
        return S3BlobStore(connection, settings.s3.prefix, compress=not seal.active)

    @provide
    def urls(
        self, store: S3BlobStore, connection: S3Connection, settings: Settings, seal: BlobSeal
    ) -> BlobUrls:
        if seal.active:
            return SealedBlobUrls()  # a presigned URL would hand out the sealed bytes
        return S3BlobUrls(store, connection, settings.s3.presign_expiry_s)


class S3BlobProvider(Provider):
    """``BLOB_BACKEND=s3``: new blobs in S3; records still pointing at files read from them."""

    scope = Scope.APP

    @provide
    def blobs(self, store: S3BlobStore, seal: BlobSeal) -> BlobStore:
        return seal.wrap(store, Backend.S3)

    @provide
    def inspector(
        self, store: S3BlobStore, connection: S3Connection, settings: Settings
    ) -> BlobInspector:
        return S3BlobInspector(store, connection, settings.s3.prefix)

    @provide
    def placement(self, settings: Settings, seal: BlobSeal) -> BlobPlacement:
        return BlobPlacement(
            PayloadLocation.S3, {PayloadLocation.FILE: sealed_files(settings, seal)}
        )


class TieringPlacementProvider(Provider):
    """Files first, S3 as the tier below (``S3_BUCKET`` set with ``BLOB_BACKEND=file``)."""

    scope = Scope.APP

    @provide(override=True)
    def placement(self, store: S3BlobStore, seal: BlobSeal) -> BlobPlacement:
        return BlobPlacement(
            PayloadLocation.FILE, {PayloadLocation.S3: seal.wrap(store, Backend.S3)}
        )
