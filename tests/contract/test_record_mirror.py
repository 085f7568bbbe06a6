"""The RecordMirror and MirrorReader contract, held against the memory and the file mirror.

Writers of one record finish in any order, so each test hands the mirror its calls out
of order and expects what the database holds: the newest record, each event once, every
log piece at its offset. The file mirror's own faults (a torn file, a piece that never
arrived, a copy that lies about its id) are at the end.
"""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import msgspec
import pytest
from prometheus_client import REGISTRY

from application.ports.record_mirror import MirroredEvaluation, Unreadable
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import DEFAULT_TENANT, TenantId
from domain.timeline import EvaluationEvent, LogChunk
from infrastructure.crypto.evaluation_keys import EvaluationKeyring
from infrastructure.crypto.lines import LineSeal
from infrastructure.files.mirror import FileRecordMirror
from infrastructure.memory.evaluation_keys import MemoryEvaluationKeys
from infrastructure.memory.mirror import MemoryRecordMirror
from tests.factories import EvaluationFactory
from tests.keys import fresh_keyring

pytestmark = pytest.mark.anyio

Mirror = MemoryRecordMirror | FileRecordMirror
D, ACME = DEFAULT_TENANT, TenantId("acme")
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "file", "sealed-file", "shredded-file"])
def mirror(request: pytest.FixtureRequest, tmp_path: Path) -> Mirror:
    if request.param == "memory":
        return MemoryRecordMirror()
    if request.param == "sealed-file":  # ENCRYPTION=on
        return FileRecordMirror(tmp_path / "files", LineSeal(fresh_keyring()))
    if request.param == "shredded-file":  # and ENCRYPTION_SHREDDING=on: under evaluation keys
        keyring = fresh_keyring()
        keys = EvaluationKeyring(MemoryEvaluationKeys(), keyring)
        return FileRecordMirror(tmp_path / "files", LineSeal(keyring, keys=keys, shred=True))
    return FileRecordMirror(tmp_path / "files")


async def _read(mirror: Mirror) -> list[MirroredEvaluation | Unreadable]:
    return [found async for found in mirror.evaluations()]


async def _only(mirror: Mirror) -> MirroredEvaluation:
    (found,) = await _read(mirror)
    assert isinstance(found, MirroredEvaluation), found
    return found


def _event(evaluation: Evaluation, event_id: str, seconds: int) -> EvaluationEvent:
    return EvaluationEvent(
        evaluation_id=evaluation.id,
        event_id=event_id,
        event_type="progress",
        timestamp=T0 + timedelta(seconds=seconds),
        message=f"{event_id} ✓",
        metadata={"n": seconds},
    )


def _piece(evaluation: Evaluation, offset: int, content: str) -> LogChunk:
    return LogChunk(evaluation_id=evaluation.id, offset=offset, content=content, created_at=T0)


async def test_an_empty_mirror_holds_nothing(mirror: Mirror) -> None:
    assert await _read(mirror) == []
    assert await mirror.count() == 0


async def test_the_newest_version_wins_whatever_the_order(mirror: Mirror) -> None:
    first = EvaluationFactory.build(version=1)
    second = msgspec.structs.replace(first, status=first.status, metadata={"v": 2}, version=2)
    third = msgspec.structs.replace(first, metadata={"v": 3}, version=3)
    await mirror.record(D, second)
    await mirror.record(D, third)
    await mirror.record(D, first)  # late: an older write finishing last
    await mirror.record(D, second)
    found = await _only(mirror)
    assert found.record == third
    assert (found.events, found.log, found.problems) == ([], "", [])
    assert await mirror.count() == 1


async def test_events_are_kept_once_in_time_order(mirror: Mirror) -> None:
    evaluation = EvaluationFactory.build()
    await mirror.record(D, evaluation)
    late, early, tie = (
        _event(evaluation, "b", 5),
        _event(evaluation, "a", 1),
        _event(evaluation, "c", 5),
    )
    for event in (late, early, late, tie):  # ``late`` redelivered
        await mirror.event(D, event)
    found = await _only(mirror)
    assert found.events == [early, late, tie]


async def test_log_pieces_land_at_their_offsets_in_any_order(mirror: Mirror) -> None:
    evaluation = EvaluationFactory.build()
    await mirror.record(D, evaluation)
    pieces = ["héllo ✓\n", "wörld 日本\n", "done\n"]
    offsets = [0]
    for piece in pieces[:-1]:
        offsets.append(offsets[-1] + len(piece.encode()))
    for index in (2, 0, 1):
        await mirror.log(D, _piece(evaluation, offsets[index], pieces[index]))
    found = await _only(mirror)
    assert found.log == "".join(pieces)
    assert found.problems == []


async def test_a_piece_that_never_arrived_is_a_reported_blank(mirror: Mirror) -> None:
    evaluation = EvaluationFactory.build()
    await mirror.record(D, evaluation)
    await mirror.log(D, _piece(evaluation, 0, "first\n"))
    await mirror.log(D, _piece(evaluation, 10, "third\n"))  # bytes 6..9 never came
    found = await _only(mirror)
    assert found.log == "first\n    third\n"  # later pieces keep their offsets
    assert len(found.problems) == 1 and "byte 6" in found.problems[0]


async def test_forget_removes_the_copy(mirror: Mirror) -> None:
    kept, purged = EvaluationFactory.build(), EvaluationFactory.build()
    for evaluation in (kept, purged):
        await mirror.record(D, evaluation)
        await mirror.event(D, _event(evaluation, "e", 1))
        await mirror.log(D, _piece(evaluation, 0, "log\n"))
    await mirror.forget(D, purged.id)
    await mirror.forget(D, EvaluationId("never-there"))
    assert [
        found.record.id for found in await _read(mirror) if isinstance(found, MirroredEvaluation)
    ] == [kept.id]
    assert await mirror.count() == 1


async def test_writers_of_one_record_in_parallel_leave_the_newest(mirror: Mirror) -> None:
    base = EvaluationFactory.build()
    versions = [msgspec.structs.replace(base, version=n, metadata={"n": n}) for n in range(1, 41)]
    async with anyio.create_task_group() as group:
        for evaluation in reversed(versions):
            group.start_soon(mirror.record, D, evaluation)
        for n in range(40):
            group.start_soon(mirror.event, D, _event(base, f"e{n}", n))
    found = await _only(mirror)
    assert found.record.version == 40 and found.record.metadata == {"n": 40}
    assert [event.event_id for event in found.events] == [f"e{n}" for n in range(40)]


async def test_the_same_id_in_two_tenants_is_two_copies(mirror: Mirror) -> None:
    ours = EvaluationFactory.build(metadata={"tenant": "default"})
    theirs = msgspec.structs.replace(ours, metadata={"tenant": "acme"}, version=ours.version + 1)
    await mirror.record(D, ours)
    await mirror.record(ACME, theirs)
    await mirror.event(ACME, _event(theirs, "acme-only", 1))
    await mirror.log(D, _piece(ours, 0, "default's log\n"))
    found = {
        item.tenant: item for item in await _read(mirror) if isinstance(item, MirroredEvaluation)
    }
    assert found[D].record == ours and found[ACME].record == theirs
    assert (found[D].events, found[D].log) == ([], "default's log\n")
    assert ([event.event_id for event in found[ACME].events], found[ACME].log) == (
        ["acme-only"],
        "",
    )
    assert await mirror.count() == 2
    assert (await mirror.tallies(ACME))[theirs.id].version == theirs.version
    assert (await mirror.tallies(D))[ours.id].log_bytes == len(b"default's log\n")

    await mirror.forget(ACME, theirs.id)
    (left,) = await _read(mirror)
    assert isinstance(left, MirroredEvaluation) and (left.tenant, left.record) == (D, ours)
    assert await mirror.tallies(ACME) == {}


# --- the file mirror's own faults ---------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> FileRecordMirror:
    return FileRecordMirror(tmp_path / "files")


async def test_the_file_layout_is_the_documented_one(files: FileRecordMirror) -> None:
    evaluation = EvaluationFactory.build()
    await files.record(D, evaluation)
    await files.event(D, _event(evaluation, "e", 1))
    await files.log(D, _piece(evaluation, 0, "a log ✓\n"))
    directory = files.directory(D, evaluation.id)
    assert sorted(os.listdir(directory)) == ["events.jsonl", "log.txt", "metadata.json"]
    assert (
        msgspec.json.decode((directory / "metadata.json").read_bytes(), type=Evaluation)
        == evaluation
    )
    assert (directory / "log.txt").read_text() == "a log ✓\n"
    assert len((directory / "events.jsonl").read_bytes().splitlines()) == 1


async def test_another_tenants_copy_lives_under_tenants(files: FileRecordMirror) -> None:
    evaluation = EvaluationFactory.build()
    await files.record(D, evaluation)
    await files.record(ACME, evaluation)
    root = files.directory(D, evaluation.id).parents[1]
    assert files.directory(D, evaluation.id) == root / "evaluations" / evaluation.id
    assert files.directory(ACME, evaluation.id) == (
        root / "tenants" / "acme" / "evaluations" / evaluation.id
    )
    for directory in (files.directory(D, evaluation.id), files.directory(ACME, evaluation.id)):
        assert os.listdir(directory) == ["metadata.json"]
    assert list(files.tenants()) == [D, ACME]


async def test_a_tree_of_no_tenant_s_making_is_not_read(files: FileRecordMirror) -> None:
    """``tenants/default/`` and a name no tenant can have are not another tenant's copies."""
    evaluation = EvaluationFactory.build()
    await files.record(ACME, evaluation)
    acme = files.directory(ACME, evaluation.id)
    for name in ("default", "Not-A-Tenant"):
        stray = acme.parents[2] / name / "evaluations" / evaluation.id
        stray.mkdir(parents=True)
        (stray / "metadata.json").write_bytes((acme / "metadata.json").read_bytes())
    assert [item.tenant for item in await _read(files)] == [ACME]  # type: ignore[union-attr]


async def test_torn_and_foreign_copies_are_reported_not_restored(files: FileRecordMirror) -> None:
    good, torn, liar, bare = (EvaluationFactory.build() for _ in range(4))
    for evaluation in (good, torn, liar):
        await files.record(D, evaluation)
    await files.event(D, _event(good, "kept", 1))
    await files.event(D, _event(good, "also", 2))
    events = files.directory(D, good.id) / "events.jsonl"
    first, second = events.read_bytes().splitlines(keepends=True)
    events.write_bytes(first + second[:10])  # a crash in the middle of the second append
    await files.event(D, _event(good, "after", 3))  # on a line of its own, not the torn one
    (files.directory(D, torn.id) / "metadata.json").write_bytes(b'{"id": "')
    other = msgspec.structs.replace(liar, id=good.id)
    (files.directory(D, liar.id) / "metadata.json").write_bytes(msgspec.json.encode(other))
    files.directory(D, bare.id).mkdir(parents=True)  # a directory with blobs only
    found = {
        (
            item.record.id if isinstance(item, MirroredEvaluation) else Path(item.path).parent.name
        ): item
        for item in await _read(files)
    }
    assert set(found) == {good.id, torn.id, liar.id, bare.id}
    restored = found[good.id]
    assert isinstance(restored, MirroredEvaluation)
    assert [event.event_id for event in restored.events] == ["kept", "after"]
    assert len(restored.problems) == 1 and "line 2" in restored.problems[0]
    for unreadable in (torn.id, liar.id, bare.id):
        assert isinstance(found[unreadable], Unreadable), found[unreadable]
    assert "no metadata.json" in found[bare.id].reason  # type: ignore[union-attr]
    assert await files.count() == 4


async def test_a_failed_copy_is_counted_and_never_raised(
    files: FileRecordMirror, tmp_path: Path
) -> None:
    evaluation = EvaluationFactory.build()
    (tmp_path / "files").write_text("a file where the tree should be")
    before = {op: _failures(op) for op in ("record", "event", "log")}
    await files.record(D, evaluation)  # the record is committed: the mirror must not fail it
    await files.event(D, _event(evaluation, "e", 1))
    await files.log(D, _piece(evaluation, 0, "x"))
    assert {op: _failures(op) - before[op] for op in before} == {"record": 1, "event": 1, "log": 1}


def _failures(operation: str) -> float:
    value = REGISTRY.get_sample_value(
        "crucible_storage_mirror_failures_total", {"operation": operation}
    )
    return value or 0.0


# --- sealed (ENCRYPTION=on) ---------------------------------------------------------------

MARKER = "PLAINTEXT-MARKER-mirror"


async def test_a_sealed_copy_holds_no_plaintext_and_reads_back(tmp_path: Path) -> None:
    keyring = fresh_keyring()
    files = FileRecordMirror(tmp_path / "files", LineSeal(keyring))
    evaluation = EvaluationFactory.build(code=f"print('{MARKER}')", metadata={"m": MARKER})
    await files.record(D, evaluation)
    await files.event(D, msgspec.structs.replace(_event(evaluation, "e", 1), message=MARKER))
    await files.log(D, _piece(evaluation, 10, f"{MARKER}\n"))  # "first ✓" is 9 bytes
    await files.log(D, _piece(evaluation, 0, "first ✓"))  # out of order, and a gap of one byte

    directory = files.directory(D, evaluation.id)
    assert sorted(os.listdir(directory)) == ["events.jsonl", "log.sealed", "metadata.json"]
    for path in directory.iterdir():
        assert MARKER.encode() not in path.read_bytes(), path.name
    found = await _only(files)
    assert found.record == evaluation
    assert [event.message for event in found.events] == [MARKER]
    assert found.log == f"first ✓ {MARKER}\n"
    assert len(found.problems) == 1  # the byte that never arrived
    tally = (await files.tallies(D))[evaluation.id]
    assert (tally.version, tally.events, tally.log_bytes) == (evaluation.version, 1, 10 + 24)

    # Without the key (or with none), the copy is unreadable, never guessed at.
    for stranger in (FileRecordMirror(tmp_path / "files", LineSeal(fresh_keyring())),):
        (unreadable,) = await _read(stranger)
        assert isinstance(unreadable, Unreadable)
    (plain,) = await _read(FileRecordMirror(tmp_path / "files"))
    assert isinstance(plain, Unreadable) and "ENCRYPTION_KEYS_FILE" in plain.reason


@pytest.mark.parametrize("shred", [False, True])
async def test_a_sealed_copy_moved_to_another_tenant_does_not_open(
    tmp_path: Path, shred: bool
) -> None:
    keyring = fresh_keyring()
    keys = EvaluationKeyring(MemoryEvaluationKeys(), keyring) if shred else None
    files = FileRecordMirror(tmp_path / "files", LineSeal(keyring, keys=keys, shred=shred))
    evaluation = EvaluationFactory.build()
    await files.record(ACME, evaluation)
    await files.event(ACME, _event(evaluation, "e", 1))
    acme = files.directory(ACME, evaluation.id)
    (found,) = await _read(files)
    assert isinstance(found, MirroredEvaluation) and found.record == evaluation

    moved = files.directory(D, evaluation.id)
    moved.parent.mkdir(parents=True)
    acme.rename(moved)  # the default tenant's directory now holds acme's copy
    (unreadable,) = await _read(files)
    assert isinstance(unreadable, Unreadable), unreadable
    assert unreadable.path == str(moved / "metadata.json")


async def test_a_copy_begun_in_clear_goes_on_sealed(tmp_path: Path) -> None:
    evaluation = EvaluationFactory.build()
    clear = FileRecordMirror(tmp_path / "files")
    await clear.record(D, evaluation)
    await clear.event(D, _event(evaluation, "before", 1))
    await clear.log(D, _piece(evaluation, 0, "clear part\n"))

    sealed = FileRecordMirror(tmp_path / "files", LineSeal(fresh_keyring()))
    newer = msgspec.structs.replace(evaluation, version=evaluation.version + 1)
    await sealed.record(D, newer)
    await sealed.event(D, _event(evaluation, "after", 2))
    await sealed.log(D, _piece(evaluation, 11, "sealed part\n"))

    found = await _only(sealed)
    assert found.record == newer
    assert [event.event_id for event in found.events] == ["before", "after"]
    assert found.log == "clear part\nsealed part\n"
    assert found.problems == []
