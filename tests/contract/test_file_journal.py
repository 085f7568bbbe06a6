"""The file journal beyond the Journal contract (tests/contract/test_journal.py).

It shares one directory among processes (one segment each), survives a torn tail,
and refuses (``BackendUnavailableError``, backend ``fallback``) when it cannot write
durably; each journal discards at its own granularity; ``NoJournal`` refuses every write.
"""

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import msgspec
import pytest

from application.errors import BackendUnavailableError
from application.intents import (
    ENTRY_DECODER,
    ENTRY_ENCODER,
    AppendLogIntent,
    JournalEntry,
)
from application.ports.journal import Journal, JournalStats
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.crypto.lines import SEALED as SEALED_LINE
from infrastructure.crypto.lines import LineSeal
from infrastructure.files.journal import FileJournal
from infrastructure.memory.journal import MemoryJournal, NoJournal
from tests.contract.journal_entries import assert_replays_alone, entry, ids, segments
from tests.keys import fresh_keyring

pytestmark = pytest.mark.anyio


async def assert_refuses_writes_and_holds_nothing(journal: Journal) -> None:
    """An append is refused as the fallback's failure, and the journal has nothing to replay."""
    with pytest.raises(BackendUnavailableError) as raised:
        await journal.append(entry(1))
    assert raised.value.backend == "fallback"
    assert await journal.has_pending() is False
    assert await journal.pending() == []
    assert await journal.stats() == JournalStats(pending=0)
    async with journal.replaying() as won:
        assert won is False


# --- discard granularity: the documented behaviour of each ------------------------------


async def test_memory_journal_discards_entry_by_entry() -> None:
    journal = MemoryJournal()
    stored = [await journal.append(entry(number)) for number in range(4)]

    assert await journal.discard(["entry_1", "entry_3", "unknown"]) == {"entry_1", "entry_3"}
    assert await journal.pending() == [stored[0], stored[2]]
    assert await journal.stats() == JournalStats(pending=2, oldest_at=stored[0].at)


async def test_file_journal_rewrites_a_partly_applied_segment_and_drains(
    file_journals: Callable[[], FileJournal], tmp_path: Path
) -> None:
    journal = file_journals()
    stored = [await journal.append(entry(number)) for number in range(4)]
    (segment,) = segments(tmp_path)

    # A subset of one segment: those entries go, the others stay, in order.
    assert await journal.discard(["entry_1", "entry_3"]) == {"entry_1", "entry_3"}
    assert segments(tmp_path) == [segment]
    assert await journal.pending() == [stored[0], stored[2]]
    # Still private to the service's user, like every segment, and no temp file left.
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600
    assert not [name for name in os.listdir(segment.parent) if name.endswith(".tmp")]
    # The writer's file was replaced under it: its next entry goes to a new segment.
    later = await journal.append(entry(9))
    assert len(segments(tmp_path)) == 2
    assert await journal.pending() == [stored[0], stored[2], later]

    # The rest (the already applied ones may be named again): every segment goes.
    assert await journal.discard([*ids(stored), later.id]) == {"entry_0", "entry_2", later.id}
    assert segments(tmp_path) == []
    assert await journal.pending() == []


# --- the file journal -------------------------------------------------------------------


async def test_file_and_memory_journals_say_whether_they_are_durable() -> None:
    assert (FileJournal.name, FileJournal.durable) == ("file", True)
    assert (MemoryJournal.name, MemoryJournal.durable) == ("memory", False)
    assert (NoJournal.name, NoJournal.durable) == ("none", False)


async def test_a_second_instance_cannot_replay_while_the_first_does(
    file_journals: Callable[[], FileJournal],
) -> None:
    one, two = file_journals(), file_journals()

    await assert_replays_alone(one, two)
    await assert_replays_alone(two, one)
    async with one.replaying() as first:
        assert first is True


async def test_two_processes_share_one_journal(
    file_journals: Callable[[], FileJournal], tmp_path: Path
) -> None:
    one, two = file_journals(), file_journals()

    a1 = await one.append(entry(1, "eval_a"))
    b1 = await two.append(entry(2, "eval_b"))
    a2 = await one.append(entry(3, "eval_a"))
    b2 = await two.append(entry(4, "eval_b"))

    assert len(segments(tmp_path)) == 2  # one segment per process
    expected = sorted([a1, b1, a2, b2], key=lambda item: item.sequence)
    assert expected == [a1, b1, a2, b2]
    for journal in (one, two):
        assert await journal.pending() == expected
        assert await journal.pending_for(DEFAULT_TENANT, "eval_b") == [b1, b2]
        assert await journal.has_pending() is True
        assert await journal.stats() == JournalStats(pending=4, oldest_at=a1.at)

    # Replaying from ``one`` applies ``two``'s entries too: its segment goes.
    assert await one.discard(ids([a1, b1, a2, b2])) == {a1.id, b1.id, a2.id, b2.id}
    assert segments(tmp_path) == []
    assert await two.pending() == []
    assert await two.has_pending() is False

    # ``two``'s segment was deleted under it: its next entry goes to a new segment.
    b3 = await two.append(entry(5, "eval_b"))
    assert b3.sequence > b2.sequence
    assert len(segments(tmp_path)) == 1
    assert await one.pending() == [b3]
    assert await two.pending() == [b3]
    a3 = await one.append(entry(6, "eval_a"))
    assert len(segments(tmp_path)) == 2
    assert await two.pending() == [b3, a3]


async def test_discard_from_one_process_trims_a_partly_applied_segment_of_another(
    file_journals: Callable[[], FileJournal], tmp_path: Path
) -> None:
    one, two = file_journals(), file_journals()
    a1 = await one.append(entry(1))
    b1 = await two.append(entry(2))
    b2 = await two.append(entry(3))

    # ``one``'s segment is fully applied, ``two``'s only in part.
    assert await one.discard([a1.id, b1.id]) == {a1.id, b1.id}
    assert len(segments(tmp_path)) == 1
    assert await one.pending() == [b2]
    assert await two.pending() == [b2]

    # Both write on in new segments; nothing is lost.
    a2 = await one.append(entry(4))
    b3 = await two.append(entry(5))
    assert await two.pending() == [b2, a2, b3]
    assert await one.pending() == [b2, a2, b3]


async def test_a_torn_last_line_is_ignored(
    file_journals: Callable[[], FileJournal], tmp_path: Path
) -> None:
    # A process killed mid-write left one acknowledged entry and half of another.
    dead = entry(1)
    dead_stored = msgspec.structs.replace(dead, sequence=1)
    directory = tmp_path / "journal"
    directory.mkdir()
    torn_line = ENTRY_ENCODER.encode(msgspec.structs.replace(entry(2), sequence=2))
    (directory / f"{'0' * 32}.jsonl").write_bytes(
        ENTRY_ENCODER.encode(dead_stored) + b"\n" + torn_line[: len(torn_line) // 2]
    )

    journal = file_journals()
    assert await journal.pending() == [dead_stored]

    # A later, complete line in another segment is still read.
    live = await journal.append(entry(3))
    assert await journal.pending() == [dead_stored, live]
    assert await journal.stats() == JournalStats(pending=2, oldest_at=dead.at)

    # The torn half never counts as an entry: applying the complete ones removes the segment.
    assert await journal.discard([dead.id, live.id]) == {dead.id, live.id}
    assert segments(tmp_path) == []


# A line the journal wrote before entries named a tenant (ADR 0032's step 4), byte for byte.
LINE_BEFORE_TENANTS = (
    b'{"id":"entry_old","evaluation_id":"eval_old","at":"2024-07-01T12:00:00.123456Z",'
    b'"intent":{"type":"append_log","content":"an old line\\n","last_update":null},'
    b'"actor":"worker","request_id":"req_old","uncertain":false,"sequence":17}'
)


async def test_a_line_of_before_tenants_is_the_default_tenants_and_unchanged(
    file_journals: Callable[[], FileJournal], tmp_path: Path
) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    (directory / f"{'2' * 32}.jsonl").write_bytes(LINE_BEFORE_TENANTS + b"\n")
    journal = file_journals()
    (old,) = await journal.pending()
    assert (old.id, old.tenant) == ("entry_old", DEFAULT_TENANT)
    assert await journal.pending_for(DEFAULT_TENANT, "eval_old") == [old]
    assert await journal.pending_for(TenantId("acme"), "eval_old") == []
    # The default tenant's entries are still written as they were: no tenant named.
    assert ENTRY_ENCODER.encode(old) == LINE_BEFORE_TENANTS


async def test_another_tenants_entry_names_it_on_disk(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)
    await journal.append(entry(1))
    await journal.append(entry(2, tenant=TenantId("acme")))
    (segment,) = segments(tmp_path)
    ours, theirs = segment.read_bytes().splitlines()
    assert b'"tenant"' not in ours
    assert theirs.endswith(b',"tenant":"acme"}')
    assert [item.tenant for item in await FileJournal(tmp_path).pending()] == ["default", "acme"]


async def test_a_line_naming_no_valid_tenant_is_not_an_entry() -> None:
    line = LINE_BEFORE_TENANTS[:-1] + b',"tenant":"../elsewhere"}'
    with pytest.raises(msgspec.ValidationError):
        ENTRY_DECODER.decode(line)


async def test_a_torn_line_only_counts_once_it_is_complete(
    file_journals: Callable[[], FileJournal], tmp_path: Path
) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    segment = directory / f"{'1' * 32}.jsonl"
    line = ENTRY_ENCODER.encode(msgspec.structs.replace(entry(1), sequence=1)) + b"\n"
    segment.write_bytes(line[:10])

    journal = file_journals()
    assert await journal.pending() == []
    with segment.open("ab") as handle:  # the writer finishes the line
        handle.write(line[10:])
    assert ids(await journal.pending()) == ["entry_1"]


async def test_pending_reads_incrementally_without_duplicates(
    file_journals: Callable[[], FileJournal],
) -> None:
    one, two = file_journals(), file_journals()
    first = [await one.append(entry(number)) for number in range(3)]
    assert await one.pending() == first
    assert await two.pending() == first

    more = [await one.append(entry(number)) for number in range(3, 5)]
    other = await two.append(entry(5))
    more_still = await one.append(entry(6))

    everything = [*first, *more, other, more_still]
    for journal in (one, two):
        assert await journal.pending() == everything
        assert await journal.pending() == everything  # reading again adds nothing
        assert await journal.stats() == JournalStats(pending=7, oldest_at=first[0].at)


async def test_concurrent_appends_and_reads_lose_nothing(
    file_journals: Callable[[], FileJournal],
) -> None:
    journal, reader = file_journals(), file_journals()
    stored: list[JournalEntry] = []
    seen: list[list[JournalEntry]] = []

    async def append(number: int) -> None:
        stored.append(await journal.append(entry(number, f"eval_{number % 7}")))

    async def read(source: FileJournal) -> None:
        for _ in range(5):
            seen.append(await source.pending())
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        for number in range(200):
            group.start_soon(append, number)
            if number % 20 == 0:
                group.start_soon(read, journal)
                group.start_soon(read, reader)

    assert len(stored) == 200
    assert len({item.sequence for item in stored}) == 200
    by_sequence = sorted(stored, key=lambda item: item.sequence)
    for source in (journal, reader):
        pending = await source.pending()
        assert len({item.id for item in pending}) == 200
        assert pending == by_sequence
    # Every read during the appends saw a prefix-consistent, duplicate-free view.
    for snapshot in seen:
        assert len({item.id for item in snapshot}) == len(snapshot)
        assert all(item in by_sequence for item in snapshot)


async def test_concurrent_appends_to_a_memory_journal_lose_nothing() -> None:
    journal = MemoryJournal()

    async with anyio.create_task_group() as group:
        for number in range(200):
            group.start_soon(journal.append, entry(number))
            group.start_soon(journal.pending)

    pending = await journal.pending()
    assert len({item.id for item in pending}) == 200
    assert len({item.sequence for item in pending}) == 200


async def test_an_append_is_on_disk_and_fsynced_when_it_returns(
    file_journals: Callable[[], FileJournal], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(os.fstat(fd).st_ino)

    monkeypatch.setattr(os, "fsync", fsync)  # the journal calls os.fsync
    journal = file_journals()

    stored = await journal.append(entry(1, intent=AppendLogIntent("é ✓\n")))

    (segment,) = segments(tmp_path)
    line = segment.read_bytes()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    # In clear, the entry's JSON; sealed, one sealed line of it.
    assert line == ENTRY_ENCODER.encode(stored) + b"\n" or line.startswith(SEALED_LINE)
    assert await journal.pending() == [stored]
    assert segment.stat().st_ino in synced  # the data
    assert (tmp_path / "journal").stat().st_ino in synced  # the new segment's name

    synced.clear()
    second = await journal.append(entry(2))
    assert segment.read_bytes().startswith(line) and segment.read_bytes().count(b"\n") == 2
    assert await journal.pending() == [stored, second]
    assert synced == [segment.stat().st_ino]


async def test_a_failed_fsync_refuses_the_entry_and_keeps_nothing_of_it(
    file_journals: Callable[[], FileJournal], monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = file_journals()
    kept = await journal.append(entry(1))
    real_fsync = os.fsync
    failures = [OSError(errno.EIO, "Input/output error")]

    def fsync(fd: int) -> None:
        if failures:
            raise failures.pop()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)  # the journal calls os.fsync

    with pytest.raises(BackendUnavailableError) as raised:
        await journal.append(entry(2))
    assert raised.value.backend == "fallback"
    assert await journal.pending() == [kept]  # the half-promised line was cut off

    after = await journal.append(entry(3))
    assert await journal.pending() == [kept, after]


async def test_an_unwritable_journal_directory_refuses_appends(
    file_journals: Callable[[], FileJournal], tmp_path: Path
) -> None:
    (tmp_path / "journal").write_bytes(b"not a directory")  # root ignores chmod: use a file
    journal = file_journals()

    await assert_refuses_writes_and_holds_nothing(journal)

    # Once the directory can be made, the journal works again.
    (tmp_path / "journal").unlink()
    stored = await journal.append(entry(2))
    assert await journal.pending() == [stored]


async def test_the_journal_directory_is_made_on_first_use(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path / "not" / "yet")
    try:
        assert await journal.has_pending() is False
        assert await journal.pending() == []
        stored = await journal.append(entry(1))
        assert (tmp_path / "not" / "yet" / "journal").is_dir()
        assert await journal.pending() == [stored]
    finally:
        journal.close()


# --- no journal at all ------------------------------------------------------------------


async def test_no_journal_refuses_every_write() -> None:
    journal = NoJournal()

    await assert_refuses_writes_and_holds_nothing(journal)
    assert await journal.pending_for(DEFAULT_TENANT, "eval_1") == []
    assert await journal.discard(["entry_1"]) == set()


async def test_a_sealed_journal_holds_no_plaintext_and_reads_clear_lines(tmp_path: Path) -> None:
    marker = "PLAINTEXT-MARKER-journal ✓\n"
    clear = FileJournal(tmp_path)
    before = await clear.append(entry(1, intent=AppendLogIntent(marker)))
    clear.close()
    sealed = FileJournal(tmp_path, LineSeal(fresh_keyring()))
    after = await sealed.append(entry(2, intent=AppendLogIntent(marker)))

    assert await sealed.pending() == [before, after]  # the clear line from before is read
    written = [path.read_bytes() for path in segments(tmp_path)]
    assert sum(b"PLAINTEXT-MARKER-journal" in data for data in written) == 1  # the clear one
    sealed.close()


async def test_sealed_lines_without_their_key_are_kept_for_an_operator(tmp_path: Path) -> None:
    writer = FileJournal(tmp_path, LineSeal(fresh_keyring()))
    first = await writer.append(entry(1))
    writer.close()
    stranger = FileJournal(tmp_path, LineSeal(fresh_keyring()))

    assert await stranger.pending() == []  # unreadable, never guessed at
    assert await FileJournal(tmp_path).pending() == []  # no keys at all: the same
    await stranger.discard([first.id])
    assert len(segments(tmp_path)) == 1  # nothing applied: the segment stays
    stranger.close()
