"""The bucket lifecycle rule this service relies on, one per ``S3_PREFIX``."""

from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError
from types_aiobotocore_s3.type_defs import LifecycleRuleTypeDef

from infrastructure.s3.client import S3Connection, error_code, s3_error

RULE_PREFIX = "crucible-storage"


def rule_id(prefix: str) -> str:
    return f"{RULE_PREFIX}:{prefix or '/'}"


async def apply_lifecycle(
    connection: S3Connection,
    prefix: str,
    *,
    expire_days: int | None,
    noncurrent_days: int,
    abort_uploads_days: int,
) -> dict[str, Any]:
    """Put (or replace) this prefix's rule, keeping every other rule of the bucket."""
    rule: dict[str, Any] = {
        "ID": rule_id(prefix),
        "Filter": {"Prefix": prefix},
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": abort_uploads_days},
    }
    if expire_days is not None:
        rule["Expiration"] = {"Days": expire_days}
    else:
        rule["Expiration"] = {"ExpiredObjectDeleteMarker": True}
    client = connection.client
    try:
        try:
            current = await client.get_bucket_lifecycle_configuration(Bucket=connection.bucket)
            rules: list[Any] = [r for r in current.get("Rules", []) if r.get("ID") != rule["ID"]]
        except ClientError as exc:
            if error_code(exc) != "NoSuchLifecycleConfiguration":
                raise
            rules = []
        await client.put_bucket_lifecycle_configuration(
            Bucket=connection.bucket,
            LifecycleConfiguration={"Rules": [*rules, cast("LifecycleRuleTypeDef", rule)]},
        )
    except (ClientError, BotoCoreError) as exc:
        raise s3_error(exc) from exc
    return rule


async def read_lifecycle(connection: S3Connection) -> list[dict[str, Any]]:
    try:
        current = await connection.client.get_bucket_lifecycle_configuration(
            Bucket=connection.bucket
        )
    except ClientError as exc:
        if error_code(exc) == "NoSuchLifecycleConfiguration":
            return []
        raise s3_error(exc) from exc
    return [dict(rule) for rule in current.get("Rules", [])]
