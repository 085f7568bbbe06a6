"""``replay``: force the failover journal into the primary now."""

import click
from dishka import AsyncContainer

from application.failover.replay import ReplayReport
from interfaces.cli import CONTEXT_SETTINGS
from interfaces.cli.common import (
    echo_json,
    fail,
    json_option,
    load,
    progress_bar,
    run,
    summary,
)
from interfaces.replay import replay_journal


@click.command("replay", context_settings=CONTEXT_SETTINGS)
@json_option
def replay(as_json: bool) -> None:
    """Apply the writes waiting in the failover journal to the primary, in order.

    A running service does this by itself as soon as the primary answers; this
    command is for a journal left behind (the service is stopped, or you want it
    drained before maintenance). Each entry is applied exactly once, however often
    this runs or wherever it is interrupted. Exits 1 if the primary is still
    unavailable, 3 if another process is replaying the same journal right now.

    \b
    Examples:
      storage-service replay
      storage-service replay --json | jq .remaining
    """
    settings = load(quiet=as_json)

    async def work(container: AsyncContainer) -> ReplayReport:
        use_case = await replay_journal(container)
        with progress_bar(not as_json) as progress:
            task = progress.add_task("replaying", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return await use_case.execute(advance)

    report = run(settings, work)
    if report.busy:
        fail("another process is replaying this journal right now; try again later", code=3)
    if as_json:
        echo_json(report)
    else:
        summary(
            f"{report.applied} applied, {report.skipped} already there, "
            f"{report.conflicts} refused as conflicts (see the log); {report.remaining} left"
        )
