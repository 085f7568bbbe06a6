"""The Journal contract, held against the file journal and the in-memory one.

Every journal keeps acknowledged writes in replay order until ``discard``; the file
journal also shares one directory among processes (one segment each), survives a
torn tail, and refuses (``BackendUnavailableError``, backend ``fallback``) when it
cannot write durably.
"""

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from application.commands import CeleryUpdate, EvaluationChanges, NewEvaluation, NewEvent
from application.intents import (
    AppendLogIntent,
    AttachPayloadIntent,
    CeleryIntent,
    CreateIntent,
    DeleteIntent,
    Intent,
    RecordEventIntent,
    UpdateIntent,
)
from application.ports.journal import Journal, JournalStats
from domain.identifiers import EvaluationId
from domain.payload import PayloadLocation, StoredPayload
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.files.journal import FileJournal
from infrastructure.memory.journal import MemoryJournal
from tests.contract.journal_entries import NOW, assert_replays_alone, entry, ids

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["file", "memory"])
def journal(request: pytest.FixtureRequest, file_journals: Callable[[], FileJournal]) -> Journal:
    if request.param == "file":
        return file_journals()
    return MemoryJournal()


# --- the contract, for every journal ---------------------------------------------------


async def test_an_empty_journal_has_nothing_pending(journal: Journal) -> None:
    assert await journal.has_pending() is False
    assert await journal.pending() == []
    assert await journal.pending_for(DEFAULT_TENANT, "eval_1") == []
    assert await journal.stats() == JournalStats(pending=0, oldest_at=None)
    assert await journal.discard(["entry_1"]) == set()


async def test_append_sets_an_increasing_sequence_and_keeps_the_order(journal: Journal) -> None:
    originals = [entry(1), entry(2, "eval_2"), entry(3), entry(4, "eval_2"), entry(5)]

    stored = [await journal.append(item) for item in originals]

    sequences = [item.sequence for item in stored]
    assert all(sequence > 0 for sequence in sequences)
    assert all(a < b for a, b in itertools.pairwise(sequences))
    for original, kept in zip(originals, stored, strict=True):
        assert kept == msgspec.structs.replace(original, sequence=kept.sequence)
    assert await journal.has_pending() is True
    assert await journal.pending() == stored
    assert await journal.pending_for(DEFAULT_TENANT, "eval_2") == [stored[1], stored[3]]
    assert await journal.pending_for(DEFAULT_TENANT, "eval_1") == [stored[0], stored[2], stored[4]]
    assert await journal.pending_for(DEFAULT_TENANT, "eval_3") == []


async def test_one_id_in_two_tenants_has_two_tenants_entries(journal: Journal) -> None:
    acme = TenantId("acme")
    ours = await journal.append(entry(1))
    theirs = await journal.append(entry(2, tenant=acme))
    assert [(item.id, item.tenant) for item in await journal.pending()] == [
        (ours.id, DEFAULT_TENANT),
        (theirs.id, acme),
    ]
    assert await journal.pending_for(DEFAULT_TENANT, "eval_1") == [ours]
    assert await journal.pending_for(acme, "eval_1") == [theirs]
    assert await journal.pending_for(TenantId("other"), "eval_1") == []

    assert await journal.discard([theirs.id]) == {theirs.id}  # acme's erased
    assert await journal.pending_for(acme, "eval_1") == []
    assert await journal.pending() == [ours]


async def test_stats_count_the_entries_and_give_the_oldest_instant(journal: Journal) -> None:
    await journal.append(entry(1, at=NOW + timedelta(minutes=5)))
    await journal.append(entry(2, at=NOW))  # appended later, but the oldest instant
    await journal.append(entry(3, at=NOW + timedelta(minutes=1)))

    assert await journal.stats() == JournalStats(pending=3, oldest_at=NOW)


INTENTS: list[Intent] = [
    CreateIntent(
        NewEvaluation(
            code="print('héllo')\n",
            id=EvaluationId("eval_1"),
            language="python",
            status=EvaluationStatus.SUBMITTED,
            metadata={"user": "ana", "tags": ["a", "b"], "nested": {"n": 1, "x": None, "f": 1.5}},
            celery_task_id="task-1",
        ),
        generated_id=True,
    ),
    UpdateIntent(
        EvaluationChanges(
            status=EvaluationStatus.COMPLETED,
            output="done",
            error=None,
            completed_at=datetime(2024, 7, 1, 14, 0, 1, 5, tzinfo=timezone(timedelta(hours=2))),
            metadata={"k": "v"},
            # runtime_ms, started_at, executor_id, ... stay UNSET
        )
    ),
    DeleteIntent(),
    CeleryIntent(
        CeleryUpdate(task_state="SUCCESS", celery_task_id="task-1", retries=2, output=None)
    ),
    AppendLogIntent("ünïcödé ✓ 日本語 🚀\n\ttab\x00nul\n"),
    RecordEventIntent(
        NewEvent(
            event_type="progress",
            message="half way",
            metadata={"pct": 50},
            timestamp=NOW,
            event_id="evt-42",
        )
    ),
    AttachPayloadIntent(
        "error",
        StoredPayload(
            location=PayloadLocation.S3,
            size=123_456,
            text="Traceback (preview) …",
            compressed=True,
            key="evaluations/eval_1/error.abc.txt.zst",
        ),
    ),
]


@pytest.mark.parametrize("intent", INTENTS, ids=lambda intent: type(intent).__name__)
async def test_every_intent_round_trips_unchanged(journal: Journal, intent: Intent) -> None:
    original = msgspec.structs.replace(entry(1, intent=intent), uncertain=True)

    stored = await journal.append(original)

    expected = msgspec.structs.replace(original, sequence=stored.sequence)
    assert stored == expected
    (pending,) = await journal.pending()
    assert pending == expected
    assert type(pending.intent) is type(intent)
    assert pending.intent == intent


async def test_all_intents_round_trip_in_one_journal(journal: Journal) -> None:
    originals = [entry(number, intent=intent) for number, intent in enumerate(INTENTS)]

    stored = [await journal.append(item) for item in originals]

    assert await journal.pending() == [
        msgspec.structs.replace(original, sequence=kept.sequence)
        for original, kept in zip(originals, stored, strict=True)
    ]


async def test_discarding_every_entry_empties_the_journal(journal: Journal) -> None:
    stored = [await journal.append(entry(number)) for number in range(3)]

    gone = await journal.discard([*ids(stored), "unknown"])

    assert gone == set(ids(stored))  # never an id that was not there
    assert await journal.pending() == []
    assert await journal.has_pending() is False
    assert await journal.stats() == JournalStats(pending=0)

    # The journal keeps working after a discard.
    again = await journal.append(entry(9))
    assert again.sequence > stored[-1].sequence
    assert await journal.pending() == [again]


async def test_discarding_unknown_ids_forgets_nothing(journal: Journal) -> None:
    stored = [await journal.append(entry(number)) for number in range(2)]

    assert await journal.discard(["unknown", "entry_99"]) == set()
    assert await journal.discard([]) == set()
    assert await journal.pending() == stored


async def test_one_replayer_at_a_time(journal: Journal) -> None:
    await assert_replays_alone(journal, journal)
    async with journal.replaying() as again:
        assert again is True


async def test_the_replay_right_is_released_when_the_body_fails(journal: Journal) -> None:
    won: list[bool] = []

    async def failing_replay() -> None:
        async with journal.replaying() as first:
            won.append(first)
            raise RuntimeError("replay failed")

    with pytest.raises(RuntimeError):
        await failing_replay()
    assert won == [True]
    async with journal.replaying() as again:
        assert again is True
