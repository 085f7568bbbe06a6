"""Failover on the memory adapters: replaying the journal exactly once, in order.

The world (an outage switch on the primary): tests/use_cases/failover_world.py.
"""

import msgspec
import pytest

from application.backends import Backend
from application.commands import EvaluationChanges, NewEvaluation, NewEvent
from application.errors import (
    BackendUnavailableError,
    WriteAcceptedError,
    WriteConflictError,
)
from application.intents import CreateIntent, Target, UpdateIntent
from application.ports.audit_log import AuditQuery
from domain.audit import AuditContext
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.memory.unit_of_work import MemoryUnitOfWork
from interfaces.replay import ContainerReplayScopes
from tests.use_cases.failover_world import ACTOR, ID, World, create

pytestmark = pytest.mark.anyio


async def test_replay_applies_everything_once_in_order_and_keeps_the_instants(
    world: World,
) -> None:
    world.outage.down = True
    wiring = await world.wire()
    answered = await wiring.writes.create(NewEvaluation(code="x", id=ID))
    world.fixed.advance(seconds=5)
    await wiring.writes.update(ID, EvaluationChanges(status=EvaluationStatus.RUNNING))
    await wiring.writes.append_log(ID, "line 1\n")
    await wiring.writes.record_event(ID, NewEvent(event_type="tick", event_id="ev-1"))
    world.fixed.advance(seconds=5)
    final = await wiring.writes.update(
        ID, EvaluationChanges(status=EvaluationStatus.COMPLETED, output="done")
    )
    world.outage.down = False
    world.fixed.advance(hours=1)  # replayed much later: the stored instants do not move
    entries = await world.journal.pending()

    report = await world.replay().execute()

    assert (report.applied, report.skipped, report.conflicts, report.remaining) == (5, 0, 0, 0)
    stored = world.stored(ID)
    assert stored.created_at == answered.created_at
    assert stored.updated_at == final.updated_at
    assert stored.status is EvaluationStatus.COMPLETED
    assert stored.version == final.version
    assert stored.output is not None and stored.output.text == "done"
    assert [c.content for c in world.database.log_chunks[ID]] == ["line 1\n"]
    assert [e.event_id for e in world.database.events[ID]] == ["ev-1"]
    assert not world.marks.applied  # forgotten with the journal
    replayed = await world.audit_log.list(AuditQuery(evaluation_id=ID))
    assert {entry.actor for entry in replayed} == {ACTOR}
    assert {entry.request_id for entry in replayed} == {e.request_id for e in entries}
    assert (await world.cache.get(DEFAULT_TENANT, ID)) == stored  # republished


async def test_a_replay_interrupted_midway_resumes_without_doubling(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    for n in range(4):
        await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={f"k{n}": n}))
    entries = await world.journal.pending()
    world.outage.down = False
    # The first two were applied and marked, then the process died before clearing them.
    for entry in entries[:2]:
        async with ContainerReplayScopes(world.container).open(
            AuditContext(
                actor=entry.actor,
                request_id=entry.request_id,
                journal_entry=entry.id,
                tenant=DEFAULT_TENANT,
            )
        ) as unit:
            await unit.handlers.run(entry.intent, Target(ID))

    report = await world.replay().execute()

    assert (report.applied, report.skipped) == (2, 2)
    assert world.stored(ID).metadata == {"k0": 0, "k1": 1, "k2": 2, "k3": 3}
    assert world.stored(ID).version == 5


async def test_a_write_that_committed_before_the_failure_is_not_applied_twice(
    world: World,
) -> None:
    await create(world, id=ID)

    class CommitThenFail(MemoryUnitOfWork):
        async def commit(self) -> None:
            raise BackendUnavailableError(Backend.DATABASE, "connection reset after COMMIT")

    wiring = await world.wire()
    wiring.uow.__class__ = CommitThenFail  # the change is applied, its answer lost
    with pytest.raises(WriteAcceptedError):  # the log's end is not known here
        await wiring.writes.append_log(ID, "once")

    [entry] = await world.journal.pending()
    assert entry.uncertain
    report = await world.replay().execute()

    assert (report.applied, report.skipped) == (0, 1)
    assert [c.content for c in world.database.log_chunks[ID]] == ["once"]


async def test_a_refused_entry_is_logged_as_a_conflict_and_cleared(world: World) -> None:
    world.outage.down = True
    await create(world, id=ID)
    world.outage.down = False
    # Someone else created it meanwhile.
    other = await world.wire(AuditContext(actor="key:other", request_id="elsewhere"))
    await other.handlers.run(CreateIntent(NewEvaluation(code="other", id=ID)), Target(ID))

    report = await world.replay().execute()

    assert (report.conflicts, report.remaining) == (1, 0)
    assert not await world.journal.has_pending()


async def test_a_change_older_than_the_primary_record_is_stale(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"old": True}))
    world.outage.down = False
    world.fixed.advance(seconds=30)
    # Another replica reached the primary and changed the record after this write.
    other = await world.wire(AuditContext(actor="key:other", request_id="elsewhere"))
    await other.handlers.run(UpdateIntent(EvaluationChanges(metadata={"new": True})), Target(ID))

    report = await world.replay().execute()

    assert report.conflicts == 1
    assert world.stored(ID).metadata == {"new": True}


async def test_a_stale_update_keeps_the_fields_nobody_changed_after_it(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    await (await world.wire()).writes.update(
        ID, EvaluationChanges(metadata={"old": True}, output="from the outage", retries=2)
    )
    world.outage.down = False
    world.fixed.advance(seconds=30)
    # Another replica changed the metadata (only) after this write.
    other = await world.wire(AuditContext(actor="key:other", request_id="elsewhere"))
    await other.handlers.run(UpdateIntent(EvaluationChanges(metadata={"new": True})), Target(ID))

    report = await world.replay().execute()

    assert (report.applied, report.conflicts, report.remaining) == (1, 0, 0)
    stored = world.stored(ID)
    assert stored.metadata == {"new": True}  # theirs is newer: ours is dropped
    assert stored.output is not None and stored.output.text == "from the outage"
    assert stored.retries == 2


async def test_a_second_replayer_waits_its_turn(world: World) -> None:
    world.outage.down = True
    await create(world, id=ID)
    world.outage.down = False

    async with world.journal.replaying():
        report = await world.replay().execute()

    assert report.busy
    assert await world.journal.has_pending()


async def test_replay_stops_when_the_primary_is_still_down(world: World) -> None:
    world.outage.down = True
    await create(world, id=ID)

    with pytest.raises(BackendUnavailableError):
        await world.replay().execute()

    assert len(await world.journal.pending()) == 1


async def test_an_entry_the_database_ends_for_a_deadlock_stays_for_the_next_round(
    world: World,
) -> None:
    """Not a conflict: PostgreSQL ended the write for another and wrote nothing of it, so
    dropping the entry would lose an accepted write."""
    world.outage.down = True
    await create(world, id=ID)
    world.outage.down = False
    world.outage.ending = 1

    with pytest.raises(WriteConflictError):
        await world.replay().execute()

    assert len(await world.journal.pending()) == 1
    report = await world.replay().execute()
    assert (report.applied, report.conflicts, report.remaining) == (1, 0, 0)
    assert world.stored(ID).id == ID


async def test_a_replay_asked_to_stop_ends_after_the_entry_in_hand(world: World) -> None:
    world.outage.down = True
    for n in range(3):
        await create(world, id=EvaluationId(f"eval-stop-{n}"))
    world.outage.down = False
    asked = 0

    def stop() -> bool:
        nonlocal asked
        asked += 1
        return asked > 1  # after the first entry

    report = await world.replay().execute(stop=stop)

    assert (report.applied, report.remaining) == (1, 2)
    assert (await world.replay().execute()).applied == 2


async def test_a_replayed_create_keeps_its_answered_id(world: World) -> None:
    world.outage.down = True
    answered = await create(world)  # a generated id
    world.outage.down = False
    other = await world.wire(AuditContext(actor="key:other", request_id="elsewhere"))
    await other.handlers.run(
        CreateIntent(NewEvaluation(code="theirs", id=answered.id)), Target(answered.id)
    )

    report = await world.replay().execute()

    assert report.conflicts == 1  # refused, not stored under another id
    assert world.stored(answered.id).code == "theirs"
    assert len(world.database.evaluations) == 1


async def test_each_entry_replays_as_its_own_tenants_write(world: World) -> None:
    """The same id journaled by two tenants: two entries, each replayed into its tenant's
    records, cache and marks; an entry of before tenants (naming none) is the default's."""
    acme = TenantId("acme")
    world.outage.down = True
    for tenant, code in ((DEFAULT_TENANT, "ours"), (acme, "theirs")):
        wiring = await world.wire(AuditContext(actor=ACTOR, request_id=code, tenant=tenant))
        await wiring.writes.create(NewEvaluation(code=code, id=ID))
    entries = await world.journal.pending()
    assert [(entry.tenant, entry.evaluation_id) for entry in entries] == [
        (DEFAULT_TENANT, ID),
        (acme, ID),
    ]
    assert isinstance(entries[0].named_tenant, msgspec.UnsetType)  # written as before tenants
    world.outage.down = False

    report = await world.replay().execute()

    assert (report.applied, report.conflicts, report.remaining) == (2, 0, 0)
    assert world.stored(ID).code == "ours"
    assert world.database.of(acme).evaluations[ID].code == "theirs"
    assert (await world.cache.get(acme, ID)) == world.database.of(acme).evaluations[ID]
    assert not world.marks.applied and not world.marks.of(acme).applied
