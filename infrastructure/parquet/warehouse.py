"""``WarehouseSink`` as zstd Parquet under a directory or an S3 prefix (pyarrow).

Layout under the root::

    evaluations/date=2024-07-01/part-<run>-<n>.parquet
    events/date=2024-07-01/part-<run>-<n>.parquet
    logs/date=2024-07-01/part-<run>-<n>.parquet
    _manifests/<run>.json

That is the default tenant's export; another tenant's is the same layout under
``tenant=<tenant>/`` (ADR 0032), manifests and cursor its own, so a reader of the
default tenant's tables sees what it always saw.

Rows are buffered per partition and written as row groups of ``ROW_GROUP`` rows, so a
run holds at most a few row groups in memory whatever its size. A file is only named in
a manifest once it is closed, and a run's manifest is written last: a reader that goes
by the manifests never sees half a run.
"""

import builtins
import secrets
from collections.abc import Iterator, Sequence
from datetime import date
from urllib.parse import urlsplit

import anyio.to_thread
import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from application.ports.warehouse import (
    ExportManifest,
    RowBatch,
    Table,
    WarehouseRow,
    WarehouseSink,
)
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.parquet.schema import arrow_table, conformed, encode_manifest, schema

ROW_GROUP = 16_384
MAX_OPEN = 4  # partitions with an open file; the least recently written is closed first
MANIFESTS = "_manifests"


def release_memory_promptly() -> None:
    """Give Arrow's freed memory back to the system at once (a one-off export process).

    Arrow's default allocator (mimalloc) keeps freed pages for reuse: a million-row export
    peaked at 331 MB with it and 292 MB with the system allocator (docs/bench-export.md).
    """
    pa.set_memory_pool(pa.system_memory_pool())


def tenant_root(root: str, tenant: TenantId) -> str:
    """Where ``tenant``'s export lives under ``root``: ``root`` itself for the default
    tenant, ``<root>/tenant=<tenant>`` for any other."""
    trimmed = root.rstrip("/")
    return trimmed if tenant == DEFAULT_TENANT else f"{trimmed}/tenant={tenant}"


class _Partition:
    def __init__(self, kind: Table, path: str) -> None:
        self.kind = kind
        self.path = path
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.Table] = []
        self.rows = 0


def filesystem(
    destination: str, s3_endpoint: str | None = None, s3_region: str | None = None
) -> tuple[pafs.FileSystem, str]:
    """The file system and root path of ``destination``: a directory or ``s3://bucket/prefix``.

    S3 credentials come from the environment (``AWS_ACCESS_KEY_ID``…), the endpoint from
    ``S3_ENDPOINT_URL`` when one is set (MinIO, SeaweedFS); a missing bucket is created.
    """
    if destination.startswith("s3://"):
        parts = urlsplit(destination)
        root = f"{parts.netloc}{parts.path}".rstrip("/")
        options: dict[str, object] = {"allow_bucket_creation": True}
        if s3_region is not None:
            options["region"] = s3_region
        if s3_endpoint is not None:
            endpoint = urlsplit(s3_endpoint)
            options |= {"endpoint_override": endpoint.netloc, "scheme": endpoint.scheme}
        fs = pafs.S3FileSystem(**options)
        fs.create_dir(parts.netloc, recursive=True)
        return fs, root
    local = pafs.LocalFileSystem()
    root = local.normalize_path(destination)
    local.create_dir(root, recursive=True)
    return local, root


def _by_day(
    kind: Table, rows: RowBatch, promoted: Sequence[str]
) -> Iterator[tuple[date, pa.Table]]:
    """The batch split by partition day, each part in the file schema (without ``date``)."""
    if isinstance(rows, Sequence):
        days: dict[date, list[WarehouseRow]] = {}
        for row in rows:
            days.setdefault(row.date, []).append(row)
        for day, part in days.items():
            yield day, arrow_table(kind, part, promoted)
        return
    batch = pa.Table.from_batches([rows])
    for day in pc.unique(batch["date"]).to_pylist():
        yield day, conformed(kind, batch.filter(pc.equal(batch["date"], day)), promoted)


class ParquetWarehouse(WarehouseSink):
    """One run's files; create one per run."""

    def __init__(self, fs: pafs.FileSystem, root: str) -> None:
        self._fs = fs
        self._root = root.rstrip("/")
        self._run = secrets.token_hex(4)
        self._open: dict[tuple[Table, date], _Partition] = {}
        self._files: list[str] = []
        self._count = 0
        self._promoted: list[str] = []

    async def last_manifest(self) -> ExportManifest | None:
        return await anyio.to_thread.run_sync(self._last_manifest)

    def _last_manifest(self) -> ExportManifest | None:
        selector = pafs.FileSelector(f"{self._root}/{MANIFESTS}", allow_not_found=True)
        names = sorted(
            info.path for info in self._fs.get_file_info(selector) if info.path.endswith(".json")
        )
        if not names:
            return None
        with self._fs.open_input_stream(names[-1]) as stream:
            return msgspec.json.decode(stream.read(), type=ExportManifest)

    async def write(self, table: Table, rows: RowBatch, metadata_columns: Sequence[str]) -> None:
        if table is Table.EVALUATIONS:  # the other tables have no metadata columns
            self._promoted = list(metadata_columns)
        await anyio.to_thread.run_sync(self._write, table, rows)

    def _write(self, kind: Table, rows: RowBatch) -> None:
        for day, part in _by_day(kind, rows, self._promoted):
            partition = self._partition(kind, day)
            partition.pending.append(part)
            partition.rows += part.num_rows
            if partition.rows >= ROW_GROUP:
                self._flush(partition)

    def _partition(self, kind: Table, day: date) -> _Partition:
        partition = self._open.pop((kind, day), None)
        if partition is None:
            if len(self._open) >= MAX_OPEN:
                oldest = next(iter(self._open))
                self._close(self._open.pop(oldest))
            self._count += 1
            name = f"part-{self._run}-{self._count:05d}.parquet"
            path = f"{self._root}/{kind.value}/date={day.isoformat()}/{name}"
            partition = _Partition(kind, path)
        self._open[kind, day] = partition  # most recently written last
        return partition

    def _flush(self, partition: _Partition) -> None:
        if not partition.pending:
            return
        if partition.writer is None:
            directory = partition.path.rsplit("/", 1)[0]
            self._fs.create_dir(directory, recursive=True)
            partition.writer = pq.ParquetWriter(
                partition.path,
                schema(partition.kind, self._promoted),
                filesystem=self._fs,
                compression="zstd",
            )
        partition.writer.write_table(pa.concat_tables(partition.pending))
        partition.pending, partition.rows = [], 0

    def _close(self, partition: _Partition) -> None:
        self._flush(partition)
        if partition.writer is not None:
            partition.writer.close()
            self._files.append(partition.path.removeprefix(self._root + "/"))

    async def finish(self, manifest: ExportManifest) -> builtins.list[str]:
        return await anyio.to_thread.run_sync(self._finish, manifest)

    def _finish(self, manifest: ExportManifest) -> list[str]:
        while self._open:
            self._close(self._open.pop(next(iter(self._open))))
        files = sorted(self._files)
        directory = f"{self._root}/{MANIFESTS}"
        self._fs.create_dir(directory, recursive=True)
        written = msgspec.structs.replace(manifest, files=files)
        path = f"{directory}/{manifest.run}.json"
        if isinstance(self._fs, pafs.S3FileSystem):  # an object appears whole, or not at all
            with self._fs.open_output_stream(path) as stream:
                stream.write(encode_manifest(written))
            return files
        # A file is visible while it is written: readers must never see half a manifest.
        staged = f"{directory}/.{manifest.run}.json.partial"
        with self._fs.open_output_stream(staged) as stream:
            stream.write(encode_manifest(written))
        self._fs.move(staged, path)
        return files

    async def abort(self) -> None:
        await anyio.to_thread.run_sync(self._abort)

    def _abort(self) -> None:
        for partition in self._open.values():
            if partition.writer is not None:
                partition.writer.close()
                self._files.append(partition.path.removeprefix(self._root + "/"))
        self._open.clear()
        for name in self._files:
            self._fs.delete_file(f"{self._root}/{name}")
        self._files.clear()
