"""EvaluationMaintenance contract over memory, SQLite, PostgreSQL (asyncpg and SQLAlchemy)."""

from datetime import timedelta

import pytest

from application.ports.evaluation_maintenance import PurgeCursor, PurgeSelection, SubjectTag
from domain.identifiers import EvaluationId
from domain.status import TERMINAL_STATUSES, EvaluationStatus
from domain.timeline import EvaluationEvent
from tests.contract.conftest import (
    BASE_TIME,
    MemoryPortStore,
    PortStore,
    maintenance,
    make_evaluation,
)

pytestmark = pytest.mark.anyio

CUTOFF = BASE_TIME + timedelta(days=30)
OLD = BASE_TIME
NEW = CUTOFF + timedelta(seconds=1)
FINISHED = PurgeSelection(updated_before=CUTOFF, statuses=TERMINAL_STATUSES)


async def _seed(store: PortStore) -> None:
    rows = [
        ("old-done", EvaluationStatus.COMPLETED, OLD, None),
        ("old-failed", EvaluationStatus.FAILED, OLD + timedelta(hours=1), None),
        ("old-running", EvaluationStatus.RUNNING, OLD, None),
        ("old-deleted", EvaluationStatus.QUEUED, OLD + timedelta(hours=2), OLD),
        ("new-done", EvaluationStatus.COMPLETED, NEW, None),
    ]
    async with store.session() as ports:
        for name, status, updated, deleted in rows:
            await ports.repository.add(
                make_evaluation(name, status=status, updated_at=updated, deleted_at=deleted)
            )
        for name in ("old-done", "new-done"):
            evaluation_id = EvaluationId(name)
            for index in range(2):
                await ports.events.append(
                    EvaluationEvent(
                        evaluation_id=evaluation_id,
                        event_id=f"e{index}",
                        event_type="status_changed",
                        timestamp=OLD,
                    )
                )
            await ports.logs.append(evaluation_id, "line 1\n", OLD, last_update=OLD)
            await ports.logs.append(evaluation_id, "line 2\n", OLD, last_update=OLD)


async def test_candidates_follow_the_selection_oldest_change_first(sql_backend: PortStore) -> None:
    await _seed(sql_backend)
    async with maintenance(sql_backend) as (ports, _):
        finished = await ports.purge_candidates(FINISHED, 10)
        assert [e.id for e in finished] == ["old-done", "old-failed"]
        with_deleted = msgspec_replace(FINISHED, include_deleted=True)
        assert [e.id for e in await ports.purge_candidates(with_deleted, 10)] == [
            "old-done",
            "old-failed",
            "old-deleted",
        ]
        only_running = PurgeSelection(
            updated_before=CUTOFF, statuses=frozenset({EvaluationStatus.RUNNING})
        )
        assert [e.id for e in await ports.purge_candidates(only_running, 10)] == ["old-running"]


async def test_candidates_page_by_keyset(sql_backend: PortStore) -> None:
    await _seed(sql_backend)
    selection = msgspec_replace(FINISHED, include_deleted=True)
    async with maintenance(sql_backend) as (ports, _):
        first = await ports.purge_candidates(selection, 2)
        cursor = PurgeCursor(first[-1].updated_at, first[-1].id)
        second = await ports.purge_candidates(selection, 2, cursor)
    assert [e.id for e in first + second] == ["old-done", "old-failed", "old-deleted"]


async def test_purge_removes_records_events_and_log_chunks_once_committed(
    sql_backend: PortStore,
) -> None:
    await _seed(sql_backend)
    ids = [EvaluationId("old-done"), EvaluationId("new-done"), EvaluationId("missing")]
    async with maintenance(sql_backend) as (ports, _):
        purged = await ports.purge(ids, FINISHED)
    # new-done changed after the cutoff: it no longer matches and stays.
    assert (purged.evaluation_ids, purged.events, purged.log_chunks) == (["old-done"], 2, 2)
    async with sql_backend.session() as store:
        assert await store.repository.get(EvaluationId("old-done")) is None
        assert await store.events.list(EvaluationId("old-done")) == []
        assert (await store.logs.read(EvaluationId("old-done"))).content == ""
        assert len(await store.events.list(EvaluationId("new-done"))) == 2
        assert (await store.logs.read(EvaluationId("new-done"))).content == "line 1\nline 2\n"
    async with maintenance(sql_backend) as (ports, _):
        again = await ports.purge(ids, FINISHED)
    assert again.evaluation_ids == []


async def test_an_uncommitted_purge_leaves_everything(sql_backend: PortStore) -> None:
    await _seed(sql_backend)
    async with maintenance(sql_backend, commit=False) as (ports, _):
        assert (await ports.purge([EvaluationId("old-done")], FINISHED)).evaluation_ids
    async with sql_backend.session() as store:
        kept = await store.repository.get(EvaluationId("old-done"))
        events = await store.events.list(EvaluationId("old-done"))
    if isinstance(sql_backend, MemoryPortStore):
        # The memory backend applies writes at once and cannot undo (MemoryUnitOfWork).
        assert (kept, events) == (None, [])
    else:
        assert kept is not None
        assert len(events) == 2


async def test_a_soft_deleted_record_goes_only_with_include_deleted(
    sql_backend: PortStore,
) -> None:
    await _seed(sql_backend)
    deleted = [EvaluationId("old-deleted")]
    async with maintenance(sql_backend) as (ports, _):
        assert (await ports.purge(deleted, FINISHED)).evaluation_ids == []
        selection = msgspec_replace(FINISHED, include_deleted=True)
        assert (await ports.purge(deleted, selection)).evaluation_ids == deleted


async def test_recently_updated_lists_live_records_newest_change_first(
    sql_backend: PortStore,
) -> None:
    await _seed(sql_backend)
    async with maintenance(sql_backend) as (ports, _):
        recent = await ports.recently_updated(3)
    assert [e.id for e in recent] == ["new-done", "old-failed", "old-running"]


def msgspec_replace(selection: PurgeSelection, **changes: object) -> PurgeSelection:
    import msgspec

    return msgspec.structs.replace(selection, **changes)


async def test_statistics_forget_what_a_purge_removed(sql_backend: PortStore) -> None:
    await _seed(sql_backend)
    async with maintenance(sql_backend) as (ports, _):
        everything = PurgeSelection(
            updated_before=CUTOFF, statuses=TERMINAL_STATUSES, include_deleted=True
        )
        await ports.purge([EvaluationId("old-done"), EvaluationId("old-deleted")], everything)

    async with sql_backend.session() as store:
        stats = await store.queries.statistics()

    assert stats.total == 3
    assert stats.by_status == {"completed": 1, "failed": 1, "running": 1}
    assert (stats.events, stats.log_bytes) == (2, 14)


async def _seed_subjects(store: PortStore) -> None:
    """Records of subject ``s``, of others, and of values that only look like ``s``."""
    rows = [
        ("s-live", {"subject": "s"}, None, EvaluationStatus.RUNNING),
        ("s-deleted", {"subject": "s", "x": 1}, OLD, EvaluationStatus.COMPLETED),
        ("s-new", {"subject": "s"}, None, EvaluationStatus.QUEUED),
        ("other", {"subject": "t"}, None, EvaluationStatus.COMPLETED),
        ("prefix", {"subject": "s2"}, None, EvaluationStatus.COMPLETED),
        ("in-array", {"subject": ["s"]}, None, EvaluationStatus.COMPLETED),
        ("nested", {"owner": {"subject": "s"}}, None, EvaluationStatus.COMPLETED),
        ("other-key", {"user": "s"}, None, EvaluationStatus.COMPLETED),
        ("number", {"subject": 7}, None, EvaluationStatus.COMPLETED),
    ]
    async with store.session() as ports:
        for offset, (name, metadata, deleted, status) in enumerate(rows):
            await ports.repository.add(
                make_evaluation(
                    name,
                    status=status,
                    metadata=metadata,
                    updated_at=NEW + timedelta(days=offset),
                    deleted_at=deleted,
                )
            )
        await ports.events.append(
            EvaluationEvent(
                evaluation_id=EvaluationId("s-live"), event_id="e", event_type="t", timestamp=OLD
            )
        )
        await ports.logs.append(EvaluationId("s-live"), "line\n", OLD, last_update=OLD)


SUBJECT_S = PurgeSelection.everything_of(SubjectTag(key="subject", value="s"))


async def test_a_subject_selects_its_string_value_of_any_age_status_or_deletion(
    sql_backend: PortStore,
) -> None:
    await _seed_subjects(sql_backend)
    async with maintenance(sql_backend) as (ports, _):
        found = await ports.purge_candidates(SUBJECT_S, 10)
        first = await ports.purge_candidates(SUBJECT_S, 2)
        rest = await ports.purge_candidates(
            SUBJECT_S, 2, PurgeCursor(first[-1].updated_at, first[-1].id)
        )
        user = PurgeSelection.everything_of(SubjectTag(key="user", value="s"))
        by_user = await ports.purge_candidates(user, 10)
        seven = PurgeSelection.everything_of(SubjectTag(key="subject", value="7"))
        assert await ports.purge_candidates(seven, 10) == []
    assert [e.id for e in found] == ["s-live", "s-deleted", "s-new"]
    assert [e.id for e in first + rest] == ["s-live", "s-deleted", "s-new"]
    assert [e.id for e in by_user] == ["other-key"]


async def test_purge_by_subject_removes_only_the_subjects_records(sql_backend: PortStore) -> None:
    await _seed_subjects(sql_backend)
    everyone = ["s-live", "s-deleted", "other", "prefix", "in-array", "nested", "number"]
    async with maintenance(sql_backend) as (ports, _):
        purged = await ports.purge([EvaluationId(name) for name in everyone], SUBJECT_S)
    async with maintenance(sql_backend) as (ports, _):
        await ports.scrub()
    assert sorted(purged.evaluation_ids) == ["s-deleted", "s-live"]
    assert (purged.events, purged.log_chunks) == (1, 1)
    async with sql_backend.session() as store:
        for name in [*everyone[2:], "s-new"]:
            assert await store.repository.get_any(EvaluationId(name)) is not None, name
        assert await store.events.list(EvaluationId("s-live")) == []


async def test_a_scrub_without_a_purge_changes_nothing(sql_backend: PortStore) -> None:
    await _seed_subjects(sql_backend)
    async with maintenance(sql_backend) as (ports, _):
        await ports.scrub()
        await ports.scrub()
    async with sql_backend.session() as store:
        assert len(await store.events.list(EvaluationId("s-live"))) == 1


async def test_a_dotted_key_is_one_top_level_key_not_a_path(sql_backend: PortStore) -> None:
    async with sql_backend.session() as ports:
        await ports.repository.add(make_evaluation("flat", metadata={"gdpr.user": "s"}))
        await ports.repository.add(make_evaluation("nested", metadata={"gdpr": {"user": "s"}}))
    dotted = PurgeSelection.everything_of(SubjectTag(key="gdpr.user", value="s"))
    async with maintenance(sql_backend) as (ports, _):
        assert [e.id for e in await ports.purge_candidates(dotted, 10)] == ["flat"]
