"""Apply the failover journal to the primary, in order, each entry exactly once.

Each entry is applied in its own transaction together with its mark in
``journal_applied`` (through the audit trail), so a replay killed at any point
resumes where it stopped: a marked entry is skipped, an unmarked one was not
applied. An entry whose first attempt on the primary failed mid-way (``uncertain``)
is skipped when the primary already holds its audit entry: that attempt committed.

Conflicts are settled as they would have been on time, by the state machine
(a refused transition stays refused) and by timestamps: a change older than the
record's last change on the primary (made meanwhile by another writer) is stale.
An update is stale field by field: what another writer changed after it (its audit
entries say which fields) is dropped from it, the rest is applied. Either way it is
logged and the entry is done.
"""

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

import msgspec
import structlog

from application.backends import Backend
from application.errors import (
    ApplicationError,
    BackendUnavailableError,
    VersionConflictError,
    WriteConflictError,
)
from application.failover.pinned_clock import pinned
from application.failover.primary import PrimaryState
from application.intents import (
    AppendLogIntent,
    CreateIntent,
    JournalEntry,
    RecordEventIntent,
    Target,
    UpdateIntent,
)
from application.ports.audit_log import AuditQuery
from application.ports.journal import Journal
from application.ports.replay_scopes import ReplayScopes, ReplayUnit
from domain.audit import AuditContext
from domain.errors import DomainError
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId, qualified_id

log = structlog.get_logger(__name__)

# Appends and creates do not overwrite anything: they are never stale.
_ADDITIVE = (CreateIntent, AppendLogIntent, RecordEventIntent)
# Audit entries read to learn what others changed after a stale update; past this many
# the whole update is treated as stale.
_OVERTAKING_LIMIT = 500


class Outcome(StrEnum):
    APPLIED = "applied"
    SKIPPED = "skipped"
    CONFLICT = "conflict"


class ReplayReport(msgspec.Struct, frozen=True, kw_only=True):
    applied: int = 0
    skipped: int = 0
    conflicts: int = 0
    remaining: int = 0
    # Another process held the replay lock: nothing was attempted here.
    busy: bool = False


Progress = Callable[[int, int], None]


class ReplayJournal:
    def __init__(self, journal: Journal, scopes: ReplayScopes, primary: PrimaryState) -> None:
        self._journal = journal
        self._scopes = scopes
        self._primary = primary

    async def execute(
        self, progress: Progress | None = None, stop: Callable[[], bool] | None = None
    ) -> ReplayReport:
        """Replay what is pending now; raises ``BackendUnavailableError`` if the primary
        drops again (what was applied stays applied and is not replayed twice).

        ``stop`` is asked between entries: the app's shutdown ends a long replay after
        the entry in hand, and the rest waits for the next start.
        """
        async with self._journal.replaying() as won:
            if not won:
                return ReplayReport(busy=True)
            entries = await self._journal.pending()
            counts = dict.fromkeys(Outcome, 0)
            ours: dict[str, set[datetime]] = {}
            for entry in entries:
                ours.setdefault(_record_of(entry), set()).add(entry.at)
            done: list[JournalEntry] = []
            try:
                for entry in entries:
                    if stop is not None and stop():
                        break
                    counts[await self._replay(entry, ours)] += 1
                    done.append(entry)
                    if progress is not None:
                        progress(len(done), len(entries))
            except BackendUnavailableError as error:
                if error.backend == Backend.DATABASE:
                    self._primary.mark_down()
                raise
            else:
                self._primary.mark_up()
            finally:
                with contextlib.suppress(BackendUnavailableError):
                    await self._settle(done)
            return ReplayReport(
                applied=counts[Outcome.APPLIED],
                skipped=counts[Outcome.SKIPPED],
                conflicts=counts[Outcome.CONFLICT],
                remaining=(await self._journal.stats()).pending,
            )

    async def _settle(self, done: list[JournalEntry]) -> None:
        """Drop the applied entries from the journal, then their marks from the primary
        (each tenant's marks in a scope of that tenant)."""
        gone = await self._journal.discard([entry.id for entry in done])
        tenants: dict[TenantId, list[str]] = {}
        for entry in done:
            if entry.id in gone:
                tenants.setdefault(entry.tenant, []).append(entry.id)
        for tenant, ids in tenants.items():
            async with self._scopes.open(AuditContext(actor="system", tenant=tenant)) as unit:
                await unit.marks.forget(ids)

    # Each entry replays as its own tenant's write (an entry of before tenants, naming
    # none, as the default tenant's).
    async def _replay(self, entry: JournalEntry, ours: dict[str, set[datetime]]) -> Outcome:
        tenant = entry.tenant
        context = AuditContext(
            actor=entry.actor,
            request_id=entry.request_id,
            journal_entry=entry.id,
            tenant=tenant,
        )
        async with self._scopes.open(context) as unit:
            if await unit.marks.is_applied(entry.id):
                return Outcome.SKIPPED
            if entry.uncertain and await _committed_on_time(unit, entry):
                outcome = Outcome.SKIPPED
            elif reason := await _stale(unit, entry, ours[_record_of(entry)]):
                kept = await _not_overtaken(unit, entry, ours[_record_of(entry)])
                log.warning(
                    "replay_conflict",
                    entry=entry.id,
                    evaluation_id=entry.evaluation_id,
                    reason=reason,
                    applied_fields=None if kept is None else _set_fields(kept),
                )
                if kept is None:
                    outcome = Outcome.CONFLICT
                else:
                    outcome = await _apply(unit, msgspec.structs.replace(entry, intent=kept))
            else:
                outcome = await _apply(unit, entry)
            # Marks the entries that changed nothing, and the refused ones.
            await unit.marks.mark(entry.id)
            await unit.uow.commit()
            await _republish(unit, tenant, entry)
            return outcome


async def _republish(unit: ReplayUnit, tenant: TenantId, entry: JournalEntry) -> None:
    """Cache and mirror the record as the primary now holds it (a skipped entry published
    nothing)."""
    evaluation_id = EvaluationId(entry.evaluation_id)
    current = await unit.repository.get(evaluation_id)
    if current is None:
        await unit.record_cache.forget(tenant, evaluation_id)
    else:
        await unit.mirror.record(tenant, current)
        await unit.record_cache.fill(tenant, current)


async def _apply(unit: ReplayUnit, entry: JournalEntry) -> Outcome:
    with pinned(entry.at):
        try:
            target = Target(EvaluationId(entry.evaluation_id), acknowledged=True)
            await unit.handlers.run(entry.intent, target)
        except (BackendUnavailableError, VersionConflictError, WriteConflictError):
            raise  # transient: the next round tries the entry again
        except (ApplicationError, DomainError) as error:
            log.warning(
                "replay_conflict",
                entry=entry.id,
                evaluation_id=entry.evaluation_id,
                reason=str(error),
            )
            await unit.uow.rollback()
            return Outcome.CONFLICT
    return Outcome.APPLIED


async def _committed_on_time(unit: ReplayUnit, entry: JournalEntry) -> bool:
    """Whether the first attempt committed after all: its audit entry carries its instant."""
    found = await unit.audit_log.list(
        AuditQuery(
            evaluation_id=entry.evaluation_id,
            actor=entry.actor,
            since=entry.at,
            until=entry.at + timedelta(microseconds=1),
            limit=100,
        )
    )
    return any(audit.request_id == entry.request_id for audit in found)


async def _not_overtaken(
    unit: ReplayUnit, entry: JournalEntry, ours: set[datetime]
) -> UpdateIntent | None:
    """A stale update without the fields others changed after it; None if nothing is left.

    Anything but an update (a delete, a Celery state, an upload) is stale as a whole.
    """
    if not isinstance(entry.intent, UpdateIntent):
        return None
    later = await unit.audit_log.list(
        AuditQuery(
            evaluation_id=entry.evaluation_id,
            since=entry.at + timedelta(microseconds=1),
            limit=_OVERTAKING_LIMIT,
        )
    )
    if len(later) >= _OVERTAKING_LIMIT:
        return None
    overtaken = {name for audit in later if audit.at not in ours for name in audit.fields}
    given = _set_fields(entry.intent)
    unset = {name: msgspec.UNSET for name in given if name in overtaken}
    if len(unset) == len(given):
        return None
    return UpdateIntent(msgspec.structs.replace(entry.intent.changes, **unset))


def _set_fields(intent: UpdateIntent) -> list[str]:
    changes = intent.changes
    fields = changes.__struct_fields__
    return [name for name in fields if getattr(changes, name) is not msgspec.UNSET]


async def _stale(unit: ReplayUnit, entry: JournalEntry, ours: set[datetime]) -> str | None:
    """Why a change is older than the record it would overwrite, if it is.

    ``ours`` are the instants of this journal's writes to the record: a record last
    changed by one of them was not changed meanwhile by anyone else.
    """
    if isinstance(entry.intent, _ADDITIVE):
        return None
    current = await unit.repository.get(EvaluationId(entry.evaluation_id))
    if current is None or current.updated_at <= entry.at or current.updated_at in ours:
        return None
    return f"the record changed at {current.updated_at.isoformat()}, after this write"


def _record_of(entry: JournalEntry) -> str:
    """The record ``entry`` writes, named across tenants."""
    return qualified_id(entry.tenant, entry.evaluation_id)
