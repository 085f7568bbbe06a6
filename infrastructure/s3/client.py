"""One aiobotocore S3 client per process, opened at start and closed at shutdown.

Credentials and the region come from the usual AWS variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``/``AWS_DEFAULT_REGION``, profiles, instance roles), resolved by
botocore; ``S3_REGION`` overrides the region.
"""

import logging
from contextlib import AsyncExitStack

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError
from types_aiobotocore_s3.client import S3Client

from application.backends import Backend
from application.errors import BackendUnavailableError

logger = logging.getLogger(__name__)

BACKEND = Backend.S3
# S3 checks ``Bucket`` names itself; this only catches typos before the first request.
MIN_BUCKET_NAME = 3


def s3_error(exc: Exception) -> BackendUnavailableError:
    """A driver error as the port's ``BackendUnavailableError`` (no secrets in the text)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        detail = f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return BackendUnavailableError(BACKEND, detail)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Connection:
    """The client and the bucket this service writes to; ``open`` before use."""

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        timeout_s: float = 30.0,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        if len(bucket) < MIN_BUCKET_NAME:
            raise ValueError("S3 bucket name must have at least 3 characters")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self._region = region
        self._credentials = (access_key_id, secret_access_key)
        self._config = AioConfig(
            signature_version="s3v4",
            # Path-style URLs work on every S3-compatible server without wildcard DNS.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            # Checksums only where S3 requires them: some S3-compatible servers refuse the
            # trailing CRC that newer botocore adds to every upload by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._stack: AsyncExitStack | None = None
        self._client: S3Client | None = None

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise RuntimeError("S3Connection.open() was not called")
        return self._client

    async def open(self) -> "S3Connection":
        stack = AsyncExitStack()
        access_key, secret_key = self._credentials
        self._client = await stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self._region,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=self._config,
            )
        )
        self._stack = stack
        return self

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = None
        self._client = None

    async def ensure_bucket(self) -> bool:
        """Create the bucket when it is missing; returns whether it was created."""
        try:
            await self.client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as exc:
            if error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise s3_error(exc) from exc
        except BotoCoreError as exc:
            raise s3_error(exc) from exc
        try:
            await self.client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise s3_error(exc) from exc
            return False
        logger.info("s3: created bucket %s", self.bucket)
        return True
