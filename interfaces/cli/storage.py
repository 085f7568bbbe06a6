"""``fsck`` and ``usage``: what storage holds, and whether it agrees with itself."""

import sys
from datetime import timedelta

import click
import msgspec
from dishka import AsyncContainer

from application.backends import Backend
from application.errors import JournalPendingError
from application.queries import BackendReport
from application.use_cases.check_storage import CheckStorage, StorageCheck
from application.use_cases.storage_report import GetBackendDetails, StorageOverview
from domain.tenancy import TenantId
from interfaces.cli import CONTEXT_SETTINGS
from interfaces.cli.common import (
    count_option,
    echo_json,
    fail,
    json_option,
    load,
    run,
    tenant_option,
)
from interfaces.cli.recovery import IndexCheck, IndexInUseError, check_file_index, echo_index
from interfaces.settings import StorageBackend


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--fix",
    is_flag=True,
    help="Delete the orphan blobs found; on STORAGE_BACKEND=file also repair the index.",
)
@click.option(
    "--rebuild-index",
    is_flag=True,
    help="STORAGE_BACKEND=file: set the index aside and build it anew from the tree.",
)
@count_option(
    "--grace-minutes",
    default=60,
    minimum=0,
    help="Blobs younger than this may belong to a write in progress: never orphans.",
)
@tenant_option
@json_option
def fsck(
    fix: bool, rebuild_index: bool, grace_minutes: int, tenant: TenantId, as_json: bool
) -> None:
    """Find one tenant's blobs no record points at (orphans) and records whose blob is missing.

    On STORAGE_BACKEND=file, first the index against the tree, every tenant's: a missing
    or torn index, records it lacks or holds older than the tree, records the tree holds
    older than the index. --fix rebuilds a missing or torn index (a torn one is set
    aside), indexes what it lacks and copies out what the tree lacks.

    Exits 0 when storage is consistent (after --fix removed the orphans), 1 otherwise,
    3 when --fix is refused because the failover journal still holds writes, or on the
    file backend because a running service serves the index it would replace.

    \b
    Examples:
      storage-service fsck
      storage-service fsck --fix --grace-minutes 120
      storage-service fsck --json | jq .missing
      storage-service fsck --tenant acme --fix
      STORAGE_BACKEND=file storage-service fsck --fix --json | jq .index
    """
    settings = load(quiet=as_json)
    index: IndexCheck | None = None
    if settings.storage.backend is StorageBackend.FILE:
        try:
            index = check_file_index(
                settings, fix=fix, rebuild=rebuild_index, show_progress=not as_json
            )
        except IndexInUseError as exc:
            fail(str(exc), code=3)
        if index.problem is not None and index.rebuild is None:
            # Without an index there is nothing to check blobs against: say so and stop.
            if as_json:
                echo_json({"index": index, "clean": False})
            else:
                echo_index(index)
            sys.exit(1)

    async def check(container: AsyncContainer) -> StorageCheck:
        async with container() as request:
            use_case = await request.get(CheckStorage)
            try:
                return await use_case.execute(fix=fix, grace=timedelta(minutes=grace_minutes))
            except JournalPendingError as exc:
                fail(
                    f"{exc}. Run `storage-service replay` (or wait for the service to) "
                    "before fsck --fix",
                    code=3,
                )

    result = run(settings, check, tenant)
    clean = result.clean and (index is None or index.clean)
    if as_json:
        extra = {} if index is None else {"index": index}
        echo_json(msgspec.structs.asdict(result) | extra | {"clean": clean})
    else:
        if index is not None:
            echo_index(index)
        click.echo(
            f"{result.blobs} blob(s), {result.referenced} referenced by records; "
            f"{len(result.orphans)} orphan(s) ({result.orphan_bytes} bytes), "
            f"{len(result.missing)} missing, {len(result.young)} too young to judge"
        )
        for key in result.orphans:
            click.echo(f"orphan  {key}{' (removed)' if key in result.removed else ''}")
        for key in result.missing:
            click.echo(f"missing {key}")
    sys.exit(0 if clean else 1)


BACKENDS = (Backend.DATABASE, Backend.FILE, Backend.CACHE)


@click.command(context_settings=CONTEXT_SETTINGS)
@json_option
def usage(as_json: bool) -> None:
    """Per backend: records, bytes, files and cache memory, measured now.

    The storage-side answer to ``du -sh``: the database's records, events, log
    chunks and size, the blob store's files and bytes, the cache's keys and
    memory. Exits 1 when the database is unavailable.

    \b
    Examples:
      storage-service usage
      storage-service usage --json | jq .backends.file.metrics
    """
    settings = load(quiet=as_json)

    async def measure(container: AsyncContainer) -> dict[str, BackendReport]:
        async with container() as request:
            details = await request.get(GetBackendDetails)
            return {name: await details.execute(name) for name in BACKENDS}

    reports = run(settings, measure)
    from application.use_cases.storage_report import overall_state, summarize

    overview = StorageOverview(
        status=overall_state(reports), summary=summarize(reports), backends=reports
    )
    if as_json:
        echo_json(overview)
    else:
        for report in reports.values():
            click.echo(f"{report.name} ({report.type}): {report.status}")
            if report.error:
                click.echo(f"  error: {report.error}")
            for name, value in {**report.metrics, **report.details}.items():
                click.echo(f"  {name:<28} {'-' if value is None else value}")
    sys.exit(1 if overview.status == "unavailable" else 0)
