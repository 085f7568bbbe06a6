"""Failover on the memory adapters: routing, and the answers given from the journal.

The world (an outage switch on the primary): tests/use_cases/failover_world.py.
"""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import get_args

import anyio
import pytest

from application.commands import CeleryUpdate, EvaluationChanges, NewEvaluation, NewEvent
from application.errors import (
    BackendUnavailableError,
    EvaluationNotFoundError,
    WriteAcceptedError,
)
from application.failover.writes import handled
from application.intents import Intent
from application.ports.audit_log import AuditQuery
from domain.audit import AuditAction
from domain.errors import InvalidTextError
from domain.identifiers import EvaluationId
from domain.status import EvaluationStatus
from infrastructure.files.journal import FileJournal
from tests.use_cases.failover_world import ACTOR, ID, World, create

pytestmark = pytest.mark.anyio


async def test_a_write_goes_to_the_primary_while_it_is_up(world: World) -> None:
    created = await create(world, id=ID)

    assert world.stored(ID) == created
    assert not await world.journal.has_pending()


async def test_a_create_during_an_outage_is_journaled_and_answered_in_full(world: World) -> None:
    world.outage.down = True

    created = await create(world, metadata={"suite": "a"})

    assert created.id.startswith("eval_20240701_120000_")
    assert created.metadata == {"suite": "a"}
    assert created.created_at == world.fixed.now()
    [entry] = await world.journal.pending()
    assert entry.evaluation_id == created.id
    assert entry.actor == ACTOR
    assert entry.request_id == f"req-{world.requests}"
    assert entry.uncertain  # the primary was tried and failed
    assert created.id not in world.database.evaluations


async def test_the_client_reads_its_own_journaled_writes(world: World) -> None:
    world.outage.down = True
    wiring = await world.wire()
    created = await wiring.writes.create(NewEvaluation(code="x", id=ID))
    world.fixed.advance(seconds=1)
    running = await wiring.writes.update(ID, EvaluationChanges(status=EvaluationStatus.RUNNING))
    chunk = await wiring.writes.append_log(ID, "hello ")
    second = await wiring.writes.append_log(ID, "world")
    event = await wiring.writes.record_event(ID, NewEvent(event_type="started"))

    assert created.version == 1
    assert running.version == 2
    assert running.status is EvaluationStatus.RUNNING
    assert (chunk.offset, second.offset) == (0, 6)
    assert event.event_id  # generated, so a replay stores it once
    reads = (await world.wire()).reads
    assert (await reads.get(ID)).status is EvaluationStatus.RUNNING
    # Each append moved the record on too (its ``last_update``).
    assert (await reads.get_fields(ID, frozenset({"status", "version"})))["version"] == 4
    log = (await reads.logs(ID, 0)).log
    assert log is not None
    assert log.content == "hello world"
    events = await reads.events(ID)
    assert events is not None
    assert [found.event_type for found in events] == ["started"]


async def test_bad_input_is_refused_before_it_is_journaled(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True

    with pytest.raises(InvalidTextError):
        await (await world.wire()).writes.append_log(ID, "x" * 1000)  # over the chunk limit

    assert not await world.journal.has_pending()


async def test_a_late_status_is_acknowledged_unchanged_when_the_record_is_known(
    world: World,
) -> None:
    await create(world, id=ID, status=EvaluationStatus.COMPLETED)
    world.outage.down = True

    answered = await (await world.wire()).writes.update(
        ID, EvaluationChanges(status=EvaluationStatus.QUEUED)
    )

    assert answered.status is EvaluationStatus.COMPLETED


async def test_a_record_from_before_the_outage_is_answered_from_the_cache(world: World) -> None:
    before = await create(world, id=ID)
    world.outage.down = True

    updated = await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"k": 1}))

    assert updated.version == before.version + 1
    assert updated.metadata == {"k": 1}


async def test_an_unknown_record_is_accepted_for_replay(world: World) -> None:
    await create(world, id=ID)
    await world.cache.clear()
    world.outage.down = True

    with pytest.raises(WriteAcceptedError) as accepted:
        await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"k": 1}))

    [entry] = await world.journal.pending()
    assert accepted.value.entry_id == entry.id


async def test_a_log_append_to_a_record_from_before_is_accepted_not_guessed(
    world: World,
) -> None:
    await create(world, id=ID)
    await (await world.wire()).writes.append_log(ID, "before ")
    world.outage.down = True

    # The record is cached, but its log is not: the offset cannot be known here.
    with pytest.raises(WriteAcceptedError):
        await (await world.wire()).writes.append_log(ID, "during")

    world.outage.down = False
    await world.replay().execute()
    assert "".join(c.content for c in world.database.log_chunks[ID]) == "before during"


async def test_if_match_cannot_be_checked_during_an_outage(world: World) -> None:
    created = await create(world, id=ID)
    world.outage.down = True

    with pytest.raises(BackendUnavailableError) as refused:
        await (await world.wire()).writes.update(
            ID, EvaluationChanges(metadata={"k": 1}), expected_version=created.version
        )

    assert refused.value.backend == "database"
    assert not await world.journal.has_pending()


async def test_writes_keep_their_order_through_the_journal_until_it_is_replayed(
    world: World,
) -> None:
    await create(world, id=ID)
    world.outage.down = True
    await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"a": 1}))
    world.outage.down = False  # back, but the journal is not replayed yet

    after = await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"b": 2}))

    assert len(await world.journal.pending()) == 2  # journaled too, behind the first
    assert after.metadata == {"a": 1, "b": 2}
    assert world.stored(ID).metadata == {}


async def test_an_upload_during_an_outage_keeps_its_blob(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    body = "x" * 500  # over the thresholds: a blob

    async def chunks() -> AsyncIterator[bytes]:
        yield body.encode()

    answered = await (await world.wire()).writes.upload(ID, "output", chunks())
    assert answered.output is not None and answered.output.size == 500
    world.outage.down = False
    await world.replay().execute()

    stored = world.stored(ID).output
    assert stored is not None and stored.key is not None
    assert await world.payloads.read_text(stored) == body


async def test_reads_of_unknown_records_still_say_not_found(world: World) -> None:
    with pytest.raises(EvaluationNotFoundError):
        await (await world.wire()).reads.get(ID)


async def test_a_celery_update_and_a_delete_during_an_outage(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    outcome = await (await world.wire()).writes.celery_update(
        ID, CeleryUpdate(task_state="STARTED")
    )
    assert outcome.applied and outcome.evaluation.status is EvaluationStatus.RUNNING
    await (await world.wire()).writes.delete(ID)
    with pytest.raises(EvaluationNotFoundError):
        await (await world.wire()).reads.get(ID)
    world.outage.down = False

    await world.replay().execute()

    assert world.stored(ID).status is EvaluationStatus.RUNNING
    assert world.stored(ID).deleted_at is not None
    actions = [entry.action for entry in await world.audit_log.list(AuditQuery(evaluation_id=ID))]
    assert AuditAction.DELETE in actions


async def test_an_outage_costs_one_attempt_not_one_per_write(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    world.outage.calls = 0

    for n in range(5):
        await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"n": n}))

    assert world.outage.calls == 1  # the first write; the rest go by the cached record
    assert world.primary_down()
    world.outage.down = False
    await world.replay().execute()
    assert not world.primary_down()
    assert world.stored(ID).metadata == {"n": 4}


async def test_a_write_to_a_record_the_primary_does_not_hold_is_404(world: World) -> None:
    world.outage.down = True
    await create(world, id=ID)  # the journal holds something: writes queue behind it
    world.outage.down = False
    world.primary.mark_up()

    with pytest.raises(EvaluationNotFoundError):
        await (await world.wire()).writes.update(
            EvaluationId("eval-nobody"), EvaluationChanges(metadata={"k": 1})
        )

    assert len(await world.journal.pending()) == 1


async def test_concurrent_journaled_appends_get_their_own_offsets(tmp_path: Path) -> None:
    # On the file journal, whose appends yield to other tasks while they fsync.
    world = World(FileJournal(tmp_path))
    world.outage.down = True
    await create(world, id=ID)
    offsets: list[int] = []

    async def append(text: str) -> None:
        offsets.append((await (await world.wire()).writes.append_log(ID, text)).offset)

    async with anyio.create_task_group() as group:
        for n in range(5):
            group.start_soon(append, f"line {n}\n")

    assert sorted(offsets) == [0, 7, 14, 21, 28]


async def test_a_write_that_reaches_the_primary_marks_it_up(world: World) -> None:
    await create(world, id=ID)
    world.outage.down = True
    await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"a": 1}))
    world.outage.down = False
    await world.replay().execute()
    world.primary.mark_down()  # e.g. a failure after which nothing was journaled

    await (await world.wire()).writes.update(ID, EvaluationChanges(metadata={"b": 2}))

    assert not world.primary.is_down


def test_every_intent_the_journal_keeps_has_a_handler() -> None:
    assert handled() == frozenset(get_args(Intent))
