"""EvaluationRepository contract: memory, SQLite and PostgreSQL behave alike."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from application.errors import (
    BackendUnavailableError,
    DuplicateEvaluationError,
    EvaluationNotFoundError,
    VersionConflictError,
)
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.payload import PayloadLocation, StoredPayload
from domain.status import EvaluationStatus
from domain.tenancy import DEFAULT_TENANT
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.evaluation_repository import SqlEvaluationRepository
from infrastructure.sql.tenancy import bind_tenant
from interfaces.settings import DatabaseSettings
from tests.contract.conftest import BASE_TIME, Ports, PortStore, make_evaluation

pytestmark = pytest.mark.anyio


async def _add_and_commit(ports: Ports, record: Evaluation) -> None:
    """A store may hold an insert until the commit and raise a taken id there."""
    await ports.repository.add(record)
    await ports.uow.commit()


async def _update_and_commit(ports: Ports, record: Evaluation, expected_version: int) -> None:
    """Likewise a version that moved on, or a record that is gone."""
    await ports.repository.update(record, expected_version=expected_version)
    await ports.uow.commit()


async def _add(store: PortStore, record: Evaluation) -> None:
    async with store.session() as ports:
        await ports.repository.add(record)


async def _stored(store: PortStore, evaluation_id: str) -> Evaluation:
    """The record as committed, read in a session of its own; it must exist."""
    async with store.session() as ports:
        record = await ports.repository.get(EvaluationId(evaluation_id))
    assert record is not None
    return record


async def test_add_then_get_round_trips_every_field(sql_backend: PortStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    original = make_evaluation(
        "eval_20240701_120000_abc:1.x-y",
        code="print('héllo wörld ✓ 🚀')\n" * 3,
        language="python3",
        status=EvaluationStatus.COMPLETED,
        created_at=datetime(2024, 7, 1, 14, 0, 0, 1, tzinfo=plus_two),
        updated_at=datetime(2024, 7, 1, 12, 5, 0, 999999, tzinfo=UTC),
        started_at=datetime(2024, 7, 1, 12, 1, 0, tzinfo=UTC),
        completed_at=datetime(2024, 7, 1, 12, 2, 0, 500000, tzinfo=UTC),
        runtime_ms=60_500,
        metadata={"submitted_by": "api", "nested": {"n": [1, 2.5, None, True]}, "ünï": "✓"},
        output=StoredPayload(PayloadLocation.INLINE, size=14, text="Count: 0 — ok"),
        error=StoredPayload(
            PayloadLocation.FILE,
            size=204_800,
            text="Traceback ✗" * 10,
            compressed=True,
            key="evaluations/eval_20240701_120000_abc:1.x-y/error.txt.zst",
        ),
        celery_task_id="celery-task-456",
        retries=2,
        executor_id="executor-1",
        container_id="container-abc",
        version=7,
    )
    await _add(sql_backend, original)
    async with sql_backend.session() as ports:
        loaded = await ports.repository.get(original.id)
    assert loaded == original
    assert loaded is not None
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at == datetime(2024, 7, 1, 12, 0, 0, 1, tzinfo=UTC)
    assert loaded.deleted_at is None


async def test_absent_payloads_stay_absent(sql_backend: PortStore) -> None:
    async with sql_backend.session() as ports:
        await ports.repository.add(make_evaluation("plain"))
        loaded = await ports.repository.get(EvaluationId("plain"))
    assert loaded is not None
    assert loaded.output is None
    assert loaded.error is None
    assert loaded.metadata == {}
    assert loaded.status is EvaluationStatus.QUEUED


async def test_empty_inline_payload_is_kept(sql_backend: PortStore) -> None:
    empty = StoredPayload(PayloadLocation.INLINE, size=0, text="")
    await _add(sql_backend, make_evaluation("empty-output", output=empty))
    loaded = await _stored(sql_backend, "empty-output")
    assert loaded.output == empty


async def test_get_unknown_returns_none(sql_backend: PortStore) -> None:
    async with sql_backend.session() as ports:
        assert await ports.repository.get(EvaluationId("nope")) is None


async def test_add_duplicate_raises_and_keeps_the_first(sql_backend: PortStore) -> None:
    await _add(sql_backend, make_evaluation("dup", code="first"))
    async with sql_backend.session() as ports:
        with pytest.raises(DuplicateEvaluationError):
            await _add_and_commit(ports, make_evaluation("dup", code="second"))
        # The transaction stays usable after the refused insert.
        await ports.repository.add(make_evaluation("other"))
    async with sql_backend.session() as ports:
        first = await ports.repository.get(EvaluationId("dup"))
        other = await ports.repository.get(EvaluationId("other"))
    assert first is not None
    assert first.code == "first"
    assert other is not None


async def test_soft_deleted_is_hidden_but_its_id_stays_taken(sql_backend: PortStore) -> None:
    await _add(sql_backend, make_evaluation("gone"))
    async with sql_backend.session() as ports:
        record = await ports.repository.get(EvaluationId("gone"))
        assert record is not None
        record.deleted_at = BASE_TIME + timedelta(minutes=1)
        record.touch(BASE_TIME + timedelta(minutes=1))
        await ports.repository.update(record, expected_version=1)
    async with sql_backend.session() as ports:
        assert await ports.repository.get(EvaluationId("gone")) is None
        kept = await ports.repository.get_any(EvaluationId("gone"))  # recovery still sees it
        assert kept is not None and kept.deleted_at == BASE_TIME + timedelta(minutes=1)
        assert kept.version == 2 and await ports.repository.get_any(EvaluationId("no")) is None
        with pytest.raises(DuplicateEvaluationError):
            await _add_and_commit(ports, make_evaluation("gone"))


async def test_update_stores_changes_and_checks_the_version(sql_backend: PortStore) -> None:
    await _add(sql_backend, make_evaluation("upd"))
    later = BASE_TIME + timedelta(seconds=5)
    async with sql_backend.session() as ports:
        record = await ports.repository.get(EvaluationId("upd"))
        assert record is not None
        record.change_status(EvaluationStatus.RUNNING, later)
        record.output = StoredPayload(PayloadLocation.INLINE, size=5, text="hello")
        record.merge_metadata({"k": "v"})
        record.touch(later)
        await ports.repository.update(record, expected_version=1)
    async with sql_backend.session() as ports:
        stored = await ports.repository.get(EvaluationId("upd"))
    assert stored == record
    assert stored is not None
    assert stored.version == 2

    # A writer still holding version 1 loses instead of overwriting.
    stale = make_evaluation("upd", code="stale", version=2)
    async with sql_backend.session() as ports:
        with pytest.raises(VersionConflictError) as info:
            await _update_and_commit(ports, stale, expected_version=1)
    assert info.value.actual == 2
    kept = await _stored(sql_backend, "upd")
    assert kept.code == "print('hello')"


async def test_update_can_clear_a_payload(sql_backend: PortStore) -> None:
    payload = StoredPayload(PayloadLocation.FILE, size=200_000, text="x", key="k.txt")
    await _add(sql_backend, make_evaluation("clear", output=payload))
    async with sql_backend.session() as ports:
        record = await ports.repository.get(EvaluationId("clear"))
        assert record is not None
        assert record.output == payload
        record.output = None
        record.touch(BASE_TIME)
        await ports.repository.update(record, expected_version=1)
    cleared = await _stored(sql_backend, "clear")
    assert cleared.output is None


async def test_update_of_unknown_record_is_not_found(sql_backend: PortStore) -> None:
    async with sql_backend.session() as ports:
        with pytest.raises(EvaluationNotFoundError):
            await _update_and_commit(ports, make_evaluation("ghost", version=2), 1)


async def test_unreachable_database_is_backend_unavailable(anyio_backend: str) -> None:
    settings = DatabaseSettings(
        url="postgresql+asyncpg://postgres@127.0.0.1:1/none", connect_timeout_s=2
    )
    engine = create_engine(settings)
    try:
        async with create_session_maker(engine)() as session:
            bind_tenant(session, DEFAULT_TENANT)
            with pytest.raises(BackendUnavailableError) as info:
                await SqlEvaluationRepository(session).get(EvaluationId("x"))
    finally:
        await engine.dispose()
    assert info.value.backend == "database"
