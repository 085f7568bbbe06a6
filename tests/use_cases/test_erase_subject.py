"""EraseSubject and ExportSubject on the memory adapters: what goes, what stays, in what
order, and a rerun after a crash halfway; the failover journal's entries of the subject."""

import contextlib
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio
import msgspec
import pytest
from dishka import Provider, Scope, provide

from application.backends import Backend
from application.commands import EvaluationChanges, NewEvaluation, NewEvent
from application.errors import BackendUnavailableError, WriteAcceptedError
from application.failover.idempotency import IdempotencyKeys
from application.ports.audit_log import AuditLog, AuditQuery
from application.ports.blob_store import BlobStore
from application.ports.evaluation_keys import EvaluationKeys, WrappedKey
from application.ports.evaluation_maintenance import PurgeSelection
from application.ports.idempotency_store import StoredResponse
from application.ports.journal import Journal
from application.use_cases.cleanup import CleanupEvaluations
from application.use_cases.create_evaluation import CreateEvaluation
from application.use_cases.erase_subject import EraseSubject, ExportSubject
from application.use_cases.get_evaluation import GetEvaluation
from application.use_cases.update_evaluation import UpdateEvaluation
from domain.access import AccessScope, Caller
from domain.audit import AuditAction, AuditContext
from domain.errors import InvalidTextError
from domain.identifiers import EvaluationId
from domain.subjects import subject_digest
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.files.blob_store import FileBlobStore
from infrastructure.files.journal import FileJournal
from infrastructure.memory.evaluation_keys import MemoryEvaluationKeys
from infrastructure.sql.migrate import upgrade
from interfaces import acting
from interfaces.settings import Settings, load_settings
from tests.use_cases.conftest import FakeWorkerLogs, FixedClock, UseCases, use_case_container
from tests.use_cases.failover_world import World, create, running_world

pytestmark = pytest.mark.anyio

GATEWAY = Caller("gateway", AccessScope.WRITE)
BIG = "x" * 5000  # over the use-case tests' blob threshold


class RecordedKeys(MemoryEvaluationKeys):
    """Notes each destroyed batch of keys and what the store held at that moment: the
    records, their blobs and their kept answers."""

    def __init__(self, app: UseCases) -> None:
        super().__init__()
        self.app = app
        self.destroyed: list[tuple[list[str], int, int]] = []

    async def destroy(self, evaluation_ids: Sequence[str]) -> int:
        blobs = sum(
            [
                len(await self.app.payloads.blobs_of(DEFAULT_TENANT, EvaluationId(e)))
                for e in evaluation_ids
            ]
        )
        records = sum(e in self.app.database.evaluations for e in evaluation_ids)
        self.destroyed.append((sorted(evaluation_ids), records, blobs))
        return await super().destroy(evaluation_ids)


async def _seed(app: UseCases, subject: str, count: int) -> list[EvaluationId]:
    ids = []
    for _ in range(count):
        made = await app.create.execute(
            NewEvaluation(code=f"code of {subject}", metadata={"subject": subject})
        )
        await app.update.execute(made.id, EvaluationChanges(output=BIG))
        await app.append_log.execute(made.id, f"log of {subject}\n")
        await app.record_event.execute(made.id, NewEvent(event_type="t", message=subject))
        ids.append(made.id)
    return ids


@pytest.fixture
async def erase(app: UseCases) -> EraseSubject:
    return await app.request.get(EraseSubject)


async def test_everything_of_the_subject_goes_and_nothing_of_another(
    app: UseCases, erase: EraseSubject
) -> None:
    mine = await _seed(app, "s", 3)
    theirs = await _seed(app, "t", 2)
    await app.delete.execute(mine[0])  # soft-deleted ones go too
    keys = await app.request.get(IdempotencyKeys)
    for number, evaluation_id in enumerate(mine + theirs):
        body = msgspec.json.encode({"id": evaluation_id})
        await keys.complete(
            GATEWAY, f"k{number}", "f", StoredResponse(status=200, headers=(), body=body)
        )

    report = await erase.execute("s", batch_size=2)

    # Each has its output and, not mirrored, its ``metadata.json`` snapshot beside it.
    assert (report.evaluations, report.events, report.log_chunks, report.blobs) == (3, 3, 3, 6)
    assert (report.idempotency_answers, report.batches, report.complete) == (3, 2, True)
    assert all(app.database.evaluations.get(e) is None for e in mine)
    assert all(app.database.evaluations.get(e) is not None for e in theirs)
    assert [bool(await app.payloads.blobs_of(DEFAULT_TENANT, e)) for e in mine + theirs] == [
        False
    ] * 3 + [True] * 2
    for number in range(3, 5):
        assert await keys.claim(GATEWAY, f"k{number}") is not None  # kept
    assert await keys.claim(GATEWAY, "k0") is None  # forgotten: free again
    trail = await (await app.request.get(AuditLog)).list(AuditQuery(limit=100))
    erasure = [entry for entry in trail if entry.action is AuditAction.ERASE]
    assert len(erasure) == 1
    assert erasure[0].fields == (f"subject_sha256:{subject_digest('s')}",)
    assert erasure[0].sizes["evaluations"] == 3
    purged = {entry.evaluation_id for entry in trail if entry.action is AuditAction.PURGE}
    assert purged == set(mine)


async def test_the_evaluation_keys_are_destroyed_before_anything_is_removed(
    app: UseCases,
) -> None:
    mine = await _seed(app, "s", 2)
    theirs = await _seed(app, "t", 1)
    keys = RecordedKeys(app)
    for evaluation_id in mine + theirs:
        await keys.add(evaluation_id, WrappedKey("k", b"w"))
    erase = dataclasses.replace(await app.request.get(EraseSubject), keys=keys)

    report = await erase.execute("s")

    # The first call, for the batch, found its records and their blobs all there; the
    # purge's own call after it found the keys gone.
    assert keys.destroyed[0] == (sorted(mine), 2, 4)
    assert report.evaluation_keys == 2
    assert sorted(keys.keys) == theirs


async def test_cleanup_destroys_the_keys_of_what_it_purges(app: UseCases) -> None:
    (gone,) = await _seed(app, "s", 1)
    (kept,) = await _seed(app, "t", 1)
    keys: EvaluationKeys = await app.request.get(EvaluationKeys)
    for evaluation_id in (gone, kept):
        await keys.add(evaluation_id, WrappedKey("k", b"w"))
    await app.delete.execute(gone)
    cleanup = await app.request.get(CleanupEvaluations)

    selection = PurgeSelection(
        updated_before=datetime(9999, 1, 1, tzinfo=UTC), statuses=frozenset(), include_deleted=True
    )

    report = await cleanup.execute(selection)

    assert report.evaluations == 1

    assert await keys.fetch(gone) is None
    assert await keys.fetch(kept) == WrappedKey("k", b"w")


async def test_a_crash_halfway_is_finished_by_a_rerun(
    app: UseCases, erase: EraseSubject, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = await _seed(app, "s", 4)
    calls = 0
    untrack = app.running.untrack

    async def crash_on_the_fifth(tenant: TenantId, evaluation_id: EvaluationId) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:  # the second batch's first (two before and two after each commit)
            raise OSError("registry gone")
        await untrack(tenant, evaluation_id)

    monkeypatch.setattr(app.running, "untrack", crash_on_the_fifth)
    with pytest.raises(OSError, match="registry gone"):
        await erase.execute("s", batch_size=2)
    assert sum(e in app.database.evaluations for e in mine) == 2  # one batch went
    monkeypatch.setattr(app.running, "untrack", untrack)

    report = await erase.execute("s")

    assert (report.evaluations, report.complete) == (2, True)
    assert not any(e in app.database.evaluations for e in mine)
    assert [await app.payloads.blobs_of(DEFAULT_TENANT, e) for e in mine] == [[]] * 4


async def test_a_limit_leaves_the_rest_for_the_next_call(
    app: UseCases, erase: EraseSubject
) -> None:
    await _seed(app, "s", 3)

    first = await erase.execute("s", limit=2)
    second = await erase.execute("s", limit=2)

    assert (first.evaluations, first.complete) == (2, False)
    assert (second.evaluations, second.complete) == (1, True)


@pytest.mark.parametrize("subject", ["", "a\x00b", "s" * 1025])
async def test_a_subject_no_metadata_value_can_be_is_refused(
    erase: EraseSubject, subject: str
) -> None:
    with pytest.raises(InvalidTextError) as refused:
        await erase.execute(subject)
    assert refused.value.field == "subject"


async def test_the_export_holds_each_evaluation_whole(app: UseCases) -> None:
    mine = await _seed(app, "s", 2)
    await _seed(app, "t", 1)
    export = await app.request.get(ExportSubject)

    archived = [line async for line in export.execute(export.tag("s"), batch_size=1)]

    assert sorted(line.record.id for line in archived) == sorted(mine)
    assert {line.record.output for line in archived} == {None}  # the whole text streams
    outputs = []
    for line in archived:
        assert line.output is not None and line.error is None
        outputs.append(b"".join([chunk async for chunk in line.output]).decode())
    assert outputs == [BIG, BIG]
    assert {line.log for line in archived} == {"log of s\n"}
    assert [[event.message for event in line.events] for line in archived] == [["s"], ["s"]]


async def _erase_in(world: World) -> EraseSubject:
    request = world.container()
    with acting.acting_as(AuditContext(actor="admin", tenant=DEFAULT_TENANT)):
        await request.get(AuditContext)
        return await request.get(EraseSubject)


async def _journal_outage(world: World) -> tuple[EvaluationId, EvaluationId, EvaluationId]:
    """While the primary is away: a record of ``s`` created, a record of ``t`` moved to
    ``s``, and a log line for a record of ``s`` the primary holds."""
    held = await create(world, metadata={"subject": "s"})
    moved = await create(world, metadata={"subject": "t"})
    world.outage.down = True
    wiring = await world.wire()
    journaled = EvaluationId("eval-journal-only")
    await wiring.writes.create(
        NewEvaluation(id=journaled, code="only in the journal", metadata={"subject": "s"})
    )
    with contextlib.suppress(WriteAcceptedError):  # journaled either way (a 200 or a 202)
        await wiring.writes.update(moved.id, EvaluationChanges(metadata={"subject": "s"}))
    with contextlib.suppress(WriteAcceptedError):
        await wiring.writes.append_log(held.id, "secret line\n")
    world.outage.down = False
    assert len(await world.journal.pending()) == 3
    return held.id, moved.id, journaled


async def test_journal_entries_of_the_subject_go_and_a_replay_brings_nothing_back(
    world: World,
) -> None:
    held, moved, journaled = await _journal_outage(world)
    kept = await create(world, metadata={"subject": "t"})

    report = await (await _erase_in(world)).execute("s")
    await world.replay().execute()

    assert report.journal_entries == 3
    assert await world.journal.pending() == []
    for evaluation_id in (held, moved, journaled):
        assert evaluation_id not in world.database.evaluations
    assert kept.id in world.database.evaluations


async def test_a_file_journal_keeps_no_byte_of_the_subject(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)
    segments = tmp_path / "journal"

    def holding() -> list[Path]:
        return [path for path in segments.iterdir() if b"secret line" in path.read_bytes()]

    async with running_world(journal) as world:
        await _journal_outage(world)
        assert holding()
        await (await _erase_in(world)).execute("s")
    journal.close()
    assert holding() == []


async def test_a_running_replay_makes_the_erasure_wait_its_turn(world: World) -> None:
    await _journal_outage(world)
    erase = await _erase_in(world)
    async with world.journal.replaying() as turn:
        assert turn
        with pytest.raises(BackendUnavailableError):
            await erase.execute("s")
    assert len(await world.journal.pending()) == 3


async def test_the_journal_goes_unused_when_nothing_is_journaled(world: World) -> None:
    journal: Journal = world.journal
    made = await create(world, metadata={"subject": "s"})
    report = await (await _erase_in(world)).execute("s")
    assert (report.evaluations, report.journal_entries) == (1, 0)
    assert made.id not in world.database.evaluations
    assert await journal.pending() == []


class FlakyFileBlobs(FileBlobStore):
    """Files whose deletes fail while ``failing`` is set (a disk gone mid-erasure)."""

    failing = False

    async def delete(self, key: str) -> None:
        if FlakyFileBlobs.failing:
            raise BackendUnavailableError(Backend.FILE, "test: the disk went away")
        await super().delete(key)


class FlakyBlobsProvider(Provider):
    @provide(scope=Scope.APP, override=True)
    def blobs(self, settings: Settings) -> BlobStore:
        return FlakyFileBlobs(settings.storage.file_storage_path)


async def test_on_sqlite_a_failed_batch_rolls_back_and_a_rerun_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'storage.db'}"
    await anyio.to_thread.run_sync(upgrade, url)
    files = tmp_path / "files"
    settings = load_settings({}, database={"url": url}, storage={"file_storage_path": files})
    monkeypatch.setattr(FlakyFileBlobs, "failing", False)
    container = use_case_container(
        FixedClock(), FakeWorkerLogs(), FlakyBlobsProvider(), settings=settings
    )
    try:
        async with container() as request:
            create = await request.get(CreateEvaluation)
            update = await request.get(UpdateEvaluation)
            mine = []
            for _ in range(4):
                made = await create.execute(NewEvaluation(code="x", metadata={"subject": "s"}))
                await update.execute(made.id, EvaluationChanges(output="z" * 200_000))
                mine.append(made.id)
        blobs = sorted(str(path) for path in files.rglob("output.*"))
        assert len(blobs) == 4

        FlakyFileBlobs.failing = True
        async with container() as request:
            with pytest.raises(BackendUnavailableError):
                await (await request.get(EraseSubject)).execute("s", batch_size=2)
        FlakyFileBlobs.failing = False
        async with container() as request:
            get = await request.get(GetEvaluation)
            for evaluation_id in mine:  # rolled back: every record and blob is there
                assert (await get.execute(evaluation_id)).id == evaluation_id
        assert sorted(str(path) for path in files.rglob("output.*")) == blobs

        async with container() as request:
            report = await (await request.get(EraseSubject)).execute("s", batch_size=2)
        # Each output and, not mirrored, its ``metadata.json`` snapshot.
        assert (report.evaluations, report.blobs, report.complete) == (4, 8, True)
        assert list(files.rglob("output.*")) == []
    finally:
        await container.close()
