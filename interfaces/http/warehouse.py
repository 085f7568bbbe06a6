"""The scheduled warehouse export: ``EXPORT_TO`` gets what changed every ``EXPORT_INTERVAL_S``.

Each tenant's export is its own (``tenant=<tenant>/`` beside the default tenant's
tables, ``infrastructure.parquet.warehouse``). The first round writes a full export;
every later one goes on from the cursor in the destination's newest manifest. The
workers of one host take turns through a file lock beside the file store (a round that
finds it taken is skipped); replicas on several hosts each export, which costs work but
no correctness: a row written twice is the same row, and readers take the newest row of
an id.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
from dishka import AsyncContainer

from application.ports.warehouse import ExportManifest
from application.use_cases.warehouse_export import ExportStoppedError, ExportWarehouse
from domain.changes import ChangeCursor
from domain.tenancy import TenantId
from infrastructure.files.durable import tried_lock
from infrastructure.parquet.warehouse import ParquetWarehouse, filesystem, tenant_root
from interfaces import acting
from interfaces.background import periodic
from interfaces.settings import Settings
from interfaces.tenant_rounds import each_tenant

logger = logging.getLogger("storage_service.export")
LOCK_NAME = ".export.lock"


def _turn(directory: Path) -> AbstractContextManager[bool]:
    """Whether this process holds the host's export turn for the block (never waits)."""
    return tried_lock(directory / LOCK_NAME)


async def run_export(
    container: AsyncContainer, settings: Settings, stopping: anyio.Event
) -> dict[TenantId, ExportManifest]:
    """One scheduled round, an export per tenant (skipped while another worker of this
    host runs one); the manifest each tenant's export wrote."""
    destination = settings.export.to
    assert destination is not None
    with _turn(settings.storage.file_storage_path) as mine:
        if not mine:
            return {}
        fs, root = filesystem(destination, settings.s3.endpoint_url, settings.s3.region)

        async def export(tenant: TenantId) -> ExportManifest | None:
            sink = ParquetWarehouse(fs, tenant_root(root, tenant))
            try:
                manifest = await _export(container, settings, sink, tenant, stopping)
            except ExportStoppedError:
                logger.info("export: the full export stopped with the service; next start")
                return None
            _log(manifest, tenant, destination)
            return manifest

        done = await each_tenant("export", settings.access.tenants, export, stopping)
    return {tenant: manifest for tenant, manifest in done.items() if manifest is not None}


async def _export(
    container: AsyncContainer,
    settings: Settings,
    sink: ParquetWarehouse,
    tenant: TenantId,
    stopping: anyio.Event,
) -> ExportManifest:
    """``tenant``'s export into ``sink``: full the first time, then after its last cursor."""
    last = await sink.last_manifest()
    tables = frozenset(settings.export.tables)
    # A table the last round did not write starts over with a full run.
    continues = last is not None and tables <= frozenset(last.tables)
    since = ChangeCursor.parse(last.cursor) if last is not None and continues else None
    async with acting.system_scope(container, tenant) as request:
        use_case = await request.get(ExportWarehouse)
        return await use_case.execute(sink, since, stop=stopping.is_set, tables=tables)


def _log(manifest: ExportManifest, tenant: TenantId, destination: str) -> None:
    logger.info(
        "export: %d row(s), %d tombstone(s), %d event(s), %d log piece(s) of tenant %s "
        "to %s, cursor %s",
        manifest.rows,
        manifest.tombstones,
        manifest.events,
        manifest.logs,
        tenant,
        destination,
        manifest.cursor,
        extra={
            "tenant": tenant,
            "rows": manifest.rows,
            "tombstones": manifest.tombstones,
            "events": manifest.events,
            "logs": manifest.logs,
        },
    )


@asynccontextmanager
async def scheduled_export(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """With ``EXPORT_TO``: a round at start and every ``EXPORT_INTERVAL_S``."""
    if settings.export.to is None:
        yield
        return
    round_ = partial(run_export, container, settings)
    async with periodic("export", settings.export.interval_s, round_):
        yield
