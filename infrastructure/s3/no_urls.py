"""``BlobUrls`` without S3: apart, so that such a deployment never loads S3's client."""

from application.backends import Backend
from application.errors import BackendUnavailableError
from application.ports.blob_urls import BlobUrls, SignedUrl


class NoBlobUrls(BlobUrls):
    """``BlobUrls`` without S3: no blob can be linked to."""

    async def signed_get(self, key: str) -> SignedUrl:
        raise BackendUnavailableError(
            Backend.S3, f"S3 is not configured (S3_BUCKET); cannot link {key}"
        )


class SealedBlobUrls(NoBlobUrls):
    """Blobs sealed (``ENCRYPTION``): none is linked to, each is read through the service."""

    sealed = True
