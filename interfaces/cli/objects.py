"""``tier`` and ``s3-lifecycle``: outputs in object storage (S3)."""

from datetime import timedelta

import click
import msgspec
from dishka import AsyncContainer

from application.use_cases.object_storage import TierPayloads, TierReport
from domain.tenancy import TenantId
from infrastructure.s3.client import S3Connection
from infrastructure.s3.lifecycle import apply_lifecycle
from interfaces.cli import CONTEXT_SETTINGS
from interfaces.cli.common import (
    count_option,
    echo_json,
    fail,
    human_bytes,
    json_option,
    load,
    run,
    running_count,
    summary,
    tenant_option,
)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--older-than-days",
    type=click.IntRange(min=0),
    default=None,
    help="Move blobs written this many days ago or earlier (default: TIER_AFTER_DAYS).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Move at most this many.")
@click.option("--dry-run", is_flag=True, help="Count what would move; move nothing.")
@tenant_option
@json_option
def tier(
    older_than_days: int | None, limit: int | None, dry_run: bool, tenant: TenantId, as_json: bool
) -> None:
    """Move one tenant's old outputs and errors from the file store to S3 (S3_BUCKET).

    Per payload: copy to S3, switch the record (compare-and-swap), delete the
    file. Reads keep working throughout; safe to interrupt and run again.

    \b
    Examples:
      storage-service tier --dry-run
      storage-service tier --older-than-days 30 --json
      storage-service tier --tenant acme
    """
    settings = load(quiet=as_json)
    days = settings.tiering.after_days if older_than_days is None else older_than_days
    if days is None:
        fail("give --older-than-days or set TIER_AFTER_DAYS", 2)
    if not settings.s3.configured:
        fail("tiering moves outputs to S3: set S3_BUCKET (and S3_ENDPOINT_URL if not AWS)", 2)

    async def move(container: AsyncContainer) -> TierReport:
        with running_count("tiering", not as_json) as done:
            async with container() as request:
                use_case = await request.get(TierPayloads)
                return await use_case.execute(
                    timedelta(days=days),
                    dry_run=dry_run,
                    limit=limit,
                    on_progress=lambda report: done(report.examined),
                )

    report = run(settings, move, tenant)
    if as_json:
        echo_json(msgspec.structs.asdict(report))
        return
    verb = "would move" if dry_run else "moved"
    summary(
        f"{verb} {report.moved} blob(s) ({human_bytes(report.moved_bytes)}) to S3; "
        f"{report.skipped} skipped of {report.examined} older than {days} day(s)"
    )


@click.command("s3-lifecycle", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--expire-days",
    type=click.IntRange(min=1),
    default=None,
    help="Expire objects under S3_PREFIX this many days after they were written "
    "(default: no age limit).",
)
@count_option(
    "--noncurrent-days",
    default=1,
    help="Expire replaced and deleted object versions (versioned buckets) after this many days.",
)
@count_option(
    "--abort-uploads-days",
    default=1,
    help="Abort multipart uploads left unfinished this many days.",
)
@json_option
def s3_lifecycle(
    expire_days: int | None, noncurrent_days: int, abort_uploads_days: int, as_json: bool
) -> None:
    """Set the bucket's lifecycle rule for this service's prefix, replacing an earlier one.

    Deleted objects (old versions on a versioned bucket) and unfinished uploads
    expire; with --expire-days, every object does once that old. Keep
    --expire-days above the retention of records (RETENTION_DAYS), or outputs
    disappear under live records.

    \b
    Examples:
      storage-service s3-lifecycle
      storage-service s3-lifecycle --expire-days 400 --json
    """
    settings = load(quiet=as_json)
    if settings.s3.bucket is None:
        fail("set S3_BUCKET (and S3_ENDPOINT_URL if not AWS)", 2)
    bucket = settings.s3.bucket

    async def configure(_: AsyncContainer) -> dict[str, object]:
        connection = S3Connection(
            bucket=bucket, endpoint_url=settings.s3.endpoint_url, region=settings.s3.region
        )
        await connection.open()
        try:
            return await apply_lifecycle(
                connection,
                settings.s3.prefix,
                expire_days=expire_days,
                noncurrent_days=noncurrent_days,
                abort_uploads_days=abort_uploads_days,
            )
        finally:
            await connection.close()

    rule = run(settings, configure)
    if as_json:
        echo_json(rule)
    else:
        summary(f"lifecycle rule {rule['ID']} set on bucket {bucket}")
