"""``export --format parquet``: the warehouse export, full or after a cursor."""

import click
from dishka import AsyncContainer

from application.ports.warehouse import ExportManifest, Table
from application.use_cases.warehouse_export import ExportWarehouse
from domain.changes import ChangeCursor
from domain.errors import InvalidTextError
from domain.tenancy import TenantId
from infrastructure.parquet.warehouse import (
    ParquetWarehouse,
    filesystem,
    release_memory_promptly,
    tenant_root,
)
from interfaces.cli.common import echo_json, fail, load, progress_bar, run, summary

LAST = "last"


def parse_tables(raw: str | None, option: str) -> frozenset[Table] | None:
    """``evaluations,events,logs`` (any of them) as tables; ``None`` when not given."""
    if raw is None:
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    known = [table.value for table in Table]
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise click.BadParameter(
            f"{', '.join(unknown) or 'nothing'}: not a table; the tables are {', '.join(known)}",
            param_hint=option,
        )
    return frozenset(Table(name) for name in names)


def export_parquet(
    destination: str,
    since: str | None,
    tables: frozenset[Table] | None,
    tenant: TenantId,
    *,
    as_json: bool,
) -> None:
    """Run one export of ``tenant`` into ``destination`` (another tenant than the default
    under ``tenant=<tenant>/``); ``since``: a cursor, ``last``, or a full run."""
    settings = load(quiet=True)
    try:
        fs, root = filesystem(destination, settings.s3.endpoint_url, settings.s3.region)
    except (OSError, ValueError) as exc:
        fail(f"--to: {exc}", code=2)
    sink = ParquetWarehouse(fs, tenant_root(root, tenant))
    release_memory_promptly()

    async def export(container: AsyncContainer) -> ExportManifest:
        start = await _start(sink, since)
        async with container() as request:
            use_case = await request.get(ExportWarehouse)
            with progress_bar(not as_json) as progress:
                task = progress.add_task("exporting" if start is None else "changes", total=None)
                return await use_case.execute(
                    sink,
                    start,
                    lambda done: progress.update(task, completed=done),
                    tables=tables,
                )

    manifest = run(settings, export, tenant)
    if as_json:
        echo_json(manifest)
        return
    timelines = "".join(
        f", {count} {name} row(s)"
        for name, count in (("event", manifest.events), ("log", manifest.logs))
        if f"{name}s" in manifest.tables
    )
    summary(
        f"exported {manifest.rows} row(s) and {manifest.tombstones} tombstone(s){timelines} "
        f"into {len(manifest.files)} file(s); next: --since {manifest.cursor}"
    )


async def _start(sink: ParquetWarehouse, since: str | None) -> ChangeCursor | None:
    if since is None:
        return None
    if since == LAST:
        manifest = await sink.last_manifest()
        if manifest is None:
            fail("--since last: the destination holds no finished export", code=2)
        return ChangeCursor.parse(manifest.cursor)
    try:
        return ChangeCursor.parse(since, "--since")
    except InvalidTextError as exc:
        raise click.BadParameter(exc.reason, param_hint="--since") from None
