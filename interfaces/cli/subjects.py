"""``erase``: every evaluation of one data subject removed everywhere (ADR 0029)."""

import click
from dishka import AsyncContainer

from application.use_cases.erase_subject import EraseSubject, ErasureReport
from domain.errors import InvalidTextError
from domain.subjects import check_subject
from interfaces.cli import CONTEXT_SETTINGS
from interfaces.cli.common import (
    count_option,
    echo_json,
    fail,
    human_bytes,
    json_option,
    load,
    progress_bar,
    run,
    summary,
)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--subject",
    required=True,
    help="The value of the metadata key SUBJECT_METADATA_KEY that names the data subject.",
)
@count_option("--batch-size", default=200, maximum=10_000, help="Evaluations per transaction.")
@json_option
def erase(subject: str, batch_size: int, as_json: bool) -> None:
    """Erase every evaluation of a data subject, everywhere, for good.

    The subject's evaluations are those whose metadata has SUBJECT_METADATA_KEY
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
    """
    try:
        check_subject(subject)
    except InvalidTextError as exc:
        fail(f"--subject: {exc.reason}", code=2)
    settings = load(quiet=as_json)

    async def erasing(container: AsyncContainer) -> ErasureReport:
        with progress_bar(not as_json) as progress:
            task = progress.add_task("erasing", total=None)

            def advance(report: ErasureReport) -> None:
                progress.update(task, completed=report.evaluations)

            async with container() as request:
                use_case = await request.get(EraseSubject)
                return await use_case.execute(subject, batch_size=batch_size, on_batch=advance)

    report = run(settings, erasing)
    if as_json:
        echo_json(report)
    else:
        summary(
            f"erased {report.evaluations} evaluation(s), {report.events} event(s), "
            f"{report.log_chunks} log chunk(s), {report.blobs} blob(s) "
            f"({human_bytes(report.blob_bytes)}), {report.journal_entries} journal entr(ies), "
            f"{report.idempotency_answers} kept answer(s); audit: subject_sha256 "
            f"{report.subject_sha256}"
        )
    if not report.complete:  # a record of the subject appeared while it ran
        fail("evaluations of the subject were added meanwhile: run it again")
