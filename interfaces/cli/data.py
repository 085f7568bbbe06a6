"""``cleanup``, ``erase``, ``export`` and ``import``: retention, erasure by data subject,
backups and moves between backends."""

import sys
from datetime import UTC, datetime
from typing import IO

import click
import msgspec
from dishka import AsyncContainer

from application.ports.evaluation_maintenance import PurgeSelection
from application.use_cases.cleanup import CleanupEvaluations, CleanupReport
from application.use_cases.erase_subject import EraseSubject, ErasureReport
from application.use_cases.export_evaluations import ArchivedEvaluation, ExportEvaluations
from application.use_cases.import_evaluations import ImportEvaluation
from domain.errors import InvalidTextError
from domain.status import TERMINAL_STATUSES, EvaluationStatus
from domain.subjects import check_subject
from domain.tenancy import TenantId
from interfaces.cli import CONTEXT_SETTINGS
from interfaces.cli.common import (
    count_option,
    echo_json,
    fail,
    human_bytes,
    json_option,
    load,
    parse_age,
    parse_since,
    progress_bar,
    run,
    running_count,
    summary,
    tenant_option,
)
from interfaces.cli.warehouse import export_parquet, parse_tables

STATUS_NAMES = [status.value for status in EvaluationStatus]


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--older-than",
    "older_than",
    required=True,
    help="Age of the last change: 30d, 12h, 2w, 1d12h.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUS_NAMES),
    help="Only these statuses (repeatable; default: completed, failed, cancelled).",
)
@click.option(
    "--include-deleted",
    is_flag=True,
    help="Also remove soft-deleted evaluations (any status) older than --older-than.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@count_option("--batch-size", default=200, maximum=10_000, help="Evaluations per transaction.")
@tenant_option
@json_option
def cleanup(
    older_than: str,
    statuses: tuple[str, ...],
    include_deleted: bool,
    dry_run: bool,
    batch_size: int,
    tenant: TenantId,
    as_json: bool,
) -> None:
    """Remove old evaluations for good, with their blobs, log chunks, events and cache keys.

    An evaluation goes when its last change is older than --older-than and it
    is in one of the statuses (live), or soft-deleted with --include-deleted.
    Works in batches, one transaction each: safe to interrupt and run again.

    \b
    Examples:
      storage-service cleanup --older-than 30d --dry-run
      storage-service cleanup --older-than 30d --include-deleted
      storage-service cleanup --older-than 7d --status failed --status cancelled --json
      storage-service cleanup --older-than 30d --tenant acme
    """
    try:
        age = parse_age(older_than)
    except click.BadParameter as exc:
        fail(f"--older-than: {exc.message}", code=2)
    settings = load(quiet=as_json)
    selection = PurgeSelection(
        updated_before=datetime.now(UTC) - age,
        statuses=frozenset(EvaluationStatus(s) for s in statuses) or TERMINAL_STATUSES,
        include_deleted=include_deleted,
    )

    async def clean(container: AsyncContainer) -> CleanupReport:
        with running_count("checking" if dry_run else "removing", not as_json) as done:
            async with container() as request:
                use_case = await request.get(CleanupEvaluations)
                return await use_case.execute(
                    selection,
                    batch_size=batch_size,
                    dry_run=dry_run,
                    on_batch=lambda report: done(report.evaluations),
                )

    report = run(settings, clean, tenant)
    if as_json:
        echo_json(report)
        return
    verb = "would remove" if dry_run else "removed"
    summary(
        f"{verb} {report.evaluations} evaluation(s), {report.blobs} blob(s) "
        f"({human_bytes(report.blob_bytes)})"
        + ("" if dry_run else f", {report.events} event(s), {report.log_chunks} log chunk(s)")
        + f" in {report.batches} batch(es)"
    )


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--subject",
    required=True,
    help="The value of the metadata key SUBJECT_METADATA_KEY that names the data subject.",
)
@count_option("--batch-size", default=200, maximum=10_000, help="Evaluations per transaction.")
@tenant_option
@json_option
def erase(subject: str, batch_size: int, tenant: TenantId, as_json: bool) -> None:
    """Erase every evaluation of a data subject of one tenant, everywhere, for good.

    The subject's evaluations are the tenant's (--tenant) whose metadata has SUBJECT_METADATA_KEY
    (default `subject`) set to exactly this string, soft-deleted ones included. Each
    goes with its events, log, blobs (every blob store), the record mirror's copy, its
    Redis keys, its failover-journal entries and the kept answers of Idempotency-Key
    requests that hold it. The audit trail gets one `erase` entry with the subject's
    SHA-256 and the counts, never the subject itself. Works in batches, one transaction
    each: safe to interrupt and run again.

    \b
    Exit codes:
      0  erased: nothing of the subject is left (also when there was nothing)
      1  stopped by a failure (storage unavailable, a journal replay running):
         what was erased stays erased; run it again to finish
      2  bad usage or configuration (an empty subject, one with NUL, over 1024 chars)

    \b
    Examples:
      storage-service erase --subject alice@example.com
      SUBJECT_METADATA_KEY=user_id storage-service erase --subject 4711 --json
      storage-service erase --subject alice@example.com --tenant acme
    """
    try:
        check_subject(subject)
    except InvalidTextError as exc:
        fail(f"--subject: {exc.reason}", code=2)
    settings = load(quiet=as_json)

    async def erasing(container: AsyncContainer) -> ErasureReport:
        with running_count("erasing", not as_json) as done:
            async with container() as request:
                use_case = await request.get(EraseSubject)
                return await use_case.execute(
                    subject, batch_size=batch_size, on_batch=lambda report: done(report.evaluations)
                )

    report = run(settings, erasing, tenant)
    if as_json:
        echo_json(report)
    else:
        summary(
            f"erased {report.evaluations} evaluation(s), {report.events} event(s), "
            f"{report.log_chunks} log chunk(s), {report.blobs} blob(s) "
            f"({human_bytes(report.blob_bytes)}), {report.journal_entries} journal entr(ies), "
            f"{report.idempotency_answers} kept answer(s), {report.evaluation_keys} "
            f"evaluation key(s); audit: subject_sha256 "
            f"{report.subject_sha256}"
        )
    if not report.complete:  # a record of the subject appeared while it ran
        fail("evaluations of the subject were added meanwhile: run it again")


@click.command("export", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--format",
    "kind",
    type=click.Choice(["jsonl", "parquet"]),
    default="jsonl",
    show_default=True,
    help="jsonl: a backup to import; parquet: the warehouse export (needs --to).",
)
@click.option(
    "--since",
    default=None,
    help="jsonl: only evaluations created at or after this ISO 8601 time, or this long ago "
    "(7d). parquet: only what changed after this cursor, or `last` (the destination's "
    "last run).",
)
@click.option(
    "--to",
    "destination",
    default=None,
    help="parquet: a directory or s3://bucket/prefix.",
)
@click.option(
    "--tables",
    default=None,
    metavar="TABLES",
    help="parquet: comma-separated, of evaluations, events, logs [default: evaluations; "
    "with --since, the tables of the run it continues].",
)
@click.option(
    "--output",
    "-o",
    type=click.File("wb"),
    default="-",
    help="jsonl: write to this file instead of stdout.",
)
@tenant_option
@json_option
def export_command(
    kind: str,
    since: str | None,
    destination: str | None,
    tables: str | None,
    output: IO[bytes],
    tenant: TenantId,
    as_json: bool,
) -> None:
    """Write one tenant's live evaluations as JSON lines (a backup) or as Parquet (for a
    warehouse).

    jsonl: one JSON object per line, newest first: {"format", "record", "output",
    "error", "log", "events"}. Outputs stored as files are read back whole.

    parquet: one row per evaluation, partitioned by creation day
    (evaluations/date=YYYY-MM-DD/), zstd, and a manifest per run (_manifests/) with the
    cursor it reached; `--since last` then writes only what changed (a tombstone row for
    what was deleted). `--tables evaluations,events,logs` adds a row per event
    (events/date=.../) and per appended log piece (logs/date=.../). Another tenant
    than the default (--tenant) gets the same layout under tenant=TENANT/. Progress and
    the summary go to stderr.

    \b
    Examples:
      storage-service export > evals.jsonl
      storage-service export --since 2024-07-01 -o july.jsonl
      storage-service export --since 7d | gzip > last-week.jsonl.gz
      storage-service export --format parquet --to /data/warehouse
      storage-service export --format parquet --to s3://lake/crucible --since last
      storage-service export --format parquet --to /data/lake --tables evaluations,events,logs
      storage-service export --tenant acme -o acme.jsonl
    """
    if kind == "parquet":
        if destination is None:
            fail("--format parquet needs --to DIR or --to s3://bucket/prefix", code=2)
        if load(quiet=True).encryption.keys_file is not None:
            fail(
                "--format parquet is refused with ENCRYPTION_KEYS_FILE set: the warehouse "
                "reads the database's columns as stored, which are sealed (docs/security.md)",
                code=2,
            )
        chosen = parse_tables(tables, "--tables")
        export_parquet(destination, since, chosen, tenant, as_json=as_json)
        return
    if destination is not None or as_json or tables is not None:
        fail(
            "--to, --tables and --json go with --format parquet; jsonl writes to --output",
            code=2,
        )
    try:
        start = None if since is None else parse_since(since)
    except click.BadParameter as exc:
        fail(f"--since: {exc.message}", code=2)
    settings = load(quiet=True)
    encoder = msgspec.json.Encoder()

    async def write(container: AsyncContainer) -> int:
        count = 0
        async with container() as request:
            use_case = await request.get(ExportEvaluations)
            exported = await use_case.execute(start)
            with progress_bar(True) as progress:
                task = progress.add_task("exporting", total=exported.total)
                async for archived in exported.records:
                    output.write(encoder.encode(archived) + b"\n")
                    count += 1
                    progress.advance(task)
        output.flush()
        return count

    count = run(settings, write, tenant)
    summary(f"exported {count} evaluation(s)")


_decoder = msgspec.json.Decoder(ArchivedEvaluation)


@click.command("import", context_settings=CONTEXT_SETTINGS)
@click.argument("source", type=click.File("rb"))
@tenant_option
@json_option
def import_command(source: IO[bytes], tenant: TenantId, as_json: bool) -> None:
    """Store the evaluations of an export (a file, or - for stdin) on this instance, as
    evaluations of the tenant --tenant names (whichever tenant they were exported from).

    Idempotent: evaluations whose id exists here (even soft-deleted) are skipped,
    so an interrupted import can simply be run again. Works across backends
    (SQLite to PostgreSQL, memory to SQLite ...): outputs are routed by this
    instance's thresholds. Exits 1 at the first malformed line, naming it.

    \b
    Examples:
      storage-service import evals.jsonl
      DATABASE_URL=postgresql://postgres@db/crucible storage-service import evals.jsonl
      gunzip -c last-week.jsonl.gz | storage-service import - --json
      storage-service import acme.jsonl --tenant acme
    """
    settings = load(quiet=as_json)
    lines = source.readlines()
    counts = {"imported": 0, "skipped": 0}

    async def store(container: AsyncContainer) -> None:
        with progress_bar(not as_json) as progress:
            task = progress.add_task("importing", total=len(lines))
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    archived = _decoder.decode(line)
                except msgspec.DecodeError as exc:
                    fail(f"line {number}: {exc}")
                async with container() as request:
                    use_case = await request.get(ImportEvaluation)
                    imported = await use_case.execute(archived)
                counts["imported" if imported else "skipped"] += 1
                progress.advance(task)

    run(settings, store, tenant)
    if as_json:
        echo_json(counts)
    else:
        summary(
            f"imported {counts['imported']} evaluation(s), "
            f"skipped {counts['skipped']} already present"
        )
    sys.exit(0)
