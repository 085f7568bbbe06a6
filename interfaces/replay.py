"""The failover journal's replay: request scopes for it, and the background replayer.

The replayer runs for the app's lifetime. While the journal holds entries it
replays them; when the primary is still unavailable it waits, doubling the wait up
to ``FAILOVER_PROBE_INTERVAL_S``, and tries again (the replay's first statement is
the probe). Killed mid-replay, it resumes from the journal and the marks at the
next start.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from dishka import AsyncContainer

from application.errors import BackendUnavailableError, WriteConflictError
from application.failover.primary import PrimaryState
from application.failover.replay import ReplayJournal
from application.failover.writes import WriteHandlers
from application.ports.audit_log import AuditLog
from application.ports.clock import Clock
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.journal import Journal
from application.ports.record_mirror import RecordMirror
from application.ports.replay_marks import ReplayMarks
from application.ports.replay_scopes import ReplayScopes
from application.ports.unit_of_work import UnitOfWork
from application.services.record_cache import RecordCache
from domain.audit import AuditContext
from infrastructure.metrics import failover_state
from interfaces import acting
from interfaces.background import background, wait_or_stop
from interfaces.settings import Settings

logger = logging.getLogger("storage_service.replay")

FIRST_BACKOFF_S = 0.1


@dataclass(frozen=True)
class _Unit:
    handlers: WriteHandlers
    repository: EvaluationRepository
    marks: ReplayMarks
    audit_log: AuditLog
    uow: UnitOfWork
    record_cache: RecordCache
    mirror: RecordMirror


class ContainerReplayScopes(ReplayScopes):
    """``ReplayScopes`` on the app's dishka container: one request scope per entry."""

    def __init__(self, container: AsyncContainer) -> None:
        self._container = container

    @asynccontextmanager
    async def open(self, context: AuditContext) -> AsyncIterator[_Unit]:
        with acting.acting_as(context):
            async with self._container() as request:
                yield _Unit(
                    handlers=await request.get(WriteHandlers),
                    repository=await request.get(EvaluationRepository),
                    marks=await request.get(ReplayMarks),
                    audit_log=await request.get(AuditLog),
                    uow=await request.get(UnitOfWork),
                    record_cache=await request.get(RecordCache),
                    mirror=await request.get(RecordMirror),
                )


async def replay_journal(container: AsyncContainer) -> ReplayJournal:
    return ReplayJournal(
        await container.get(Journal),
        ContainerReplayScopes(container),
        await container.get(PrimaryState),
    )


async def _publish_state(journal: Journal, primary: PrimaryState, clock: Clock) -> int | None:
    """Set the failover gauges of ``/metrics``; the entries pending, None if unreadable."""
    try:
        stats = await journal.stats()
    except Exception:  # an unreadable journal must not end the job: the next round retries
        logger.exception("cannot read the failover journal")
        return None
    age = stats.oldest_age_s(clock.now()) or 0.0
    failover_state(primary_up=not primary.is_down, pending=stats.pending, oldest_age_s=age)
    return stats.pending


async def _replay_forever(container: AsyncContainer, cap_s: float, stopping: anyio.Event) -> None:
    journal = await container.get(Journal)
    primary = await container.get(PrimaryState)
    clock = await container.get(Clock)
    replay = await replay_journal(container)
    backoff = FIRST_BACKOFF_S
    while not stopping.is_set():
        pending = await _publish_state(journal, primary, clock)
        if pending is None:
            await wait_or_stop(stopping, cap_s)
            continue
        if not pending:
            await wait_or_stop(stopping, min(cap_s, 1.0))
            continue
        try:
            report = await replay.execute(stop=stopping.is_set)
        except (BackendUnavailableError, WriteConflictError) as error:
            # The entries stay: the primary is away, or it ended a replayed write for another.
            logger.info("replay paused (%s); next try in %.1f s", error, backoff)
            await wait_or_stop(stopping, backoff)
            backoff = min(backoff * 2, cap_s)
            continue
        except Exception:  # the journal stays; the next round tries again
            logger.exception("replay failed")
            await wait_or_stop(stopping, cap_s)
            continue
        backoff = FIRST_BACKOFF_S
        if report.busy:  # another process replays the shared journal
            await wait_or_stop(stopping, min(cap_s, 1.0))
            continue
        logger.info(
            "replayed the failover journal: %d applied, %d skipped, %d conflicts, %d left",
            report.applied,
            report.skipped,
            report.conflicts,
            report.remaining,
            extra={
                "applied": report.applied,
                "skipped": report.skipped,
                "conflicts": report.conflicts,
                "remaining": report.remaining,
            },
        )


@asynccontextmanager
async def replaying(container: AsyncContainer, settings: Settings) -> AsyncIterator[None]:
    """While the app runs: replay the failover journal whenever it holds entries.

    At the stop, a replay in progress finishes (within ``STOP_GRACE_S``), then it ends.
    """

    async def run(stopping: anyio.Event) -> None:
        await _replay_forever(container, settings.failover.probe_interval_s, stopping)

    async with background("failover replay", run):
        yield
