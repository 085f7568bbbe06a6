"""Two tenants side by side: every adapter keeps each tenant's rows to itself (ADR 0032).

Start-up still refuses any tenant but ``default``, so the stores are built here directly
with a second tenant: memory, SQLite, and PostgreSQL both as the service runs it (asyncpg
write paths and pages) and through SQLAlchemy. Each tenant holds records, events, a log
and audit entries; whatever one tenant reads, counts, searches or writes never reaches the
other's. Both also hold a record of the same id, with an event and a log of the same event
id and offset (keys are ``(tenant_id, id)`` since migration 0015): two records, each
tenant's own. On SQLite this filter is the whole guarantee: there every statement the
SQLAlchemy adapters send on a tenant's table must name ``tenant_id``.
"""

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import anyio
import pytest
from sqlalchemy import event

from application.errors import DuplicateEvaluationError, EvaluationNotFoundError
from application.ports.audit_log import AuditQuery
from application.ports.change_feed import ChangeQuery
from application.ports.evaluation_maintenance import PurgeSelection
from application.queries import EvaluationFilter, EvaluationQuery
from application.search import TextSearch
from domain.audit import AuditAction, AuditEntry
from domain.identifiers import EvaluationId
from domain.status import TERMINAL_STATUSES, EvaluationStatus
from domain.tenancy import DEFAULT_TENANT, TenantId
from domain.timeline import EvaluationEvent
from infrastructure.sql.tables import ALL_TABLES
from tests.contract.conftest import (
    BASE_TIME,
    PortStore,
    SqlPortStore,
    maintenance,
    make_evaluation,
)

pytestmark = pytest.mark.anyio

ACME = TenantId("acme")
# Each tenant's records: their ids, the status all of them have, and the runtimes.
TENANTS = {
    DEFAULT_TENANT: ("d", EvaluationStatus.COMPLETED, "python"),
    ACME: ("a", EvaluationStatus.FAILED, "rust"),
}


_TABLE = re.compile(r"\b(" + "|".join(table.name for table in ALL_TABLES) + r")\b")
_FILTERED = re.compile(r"\b(WHERE|ON)\b.*\btenant_id\b", re.S | re.I)


def _names_its_tenant(statement: str) -> bool:
    """An insert names the column it writes; any other statement filters on it (a
    ``SELECT`` lists ``tenant_id`` among its columns whether or not it filters)."""
    if statement.lstrip().upper().startswith("INSERT"):
        return "tenant_id" in statement.split(")", 1)[0]
    return _FILTERED.search(statement) is not None


@pytest.fixture(autouse=True)
def every_statement_names_a_tenant(sql_backend: PortStore) -> Iterator[None]:
    """SQLAlchemy's stores: any statement on a tenant's table that does not name
    ``tenant_id`` fails the test (on SQLite the filter is the whole guarantee)."""
    if not isinstance(sql_backend, SqlPortStore):
        yield
        return
    unnamed: list[str] = []

    def check(*args: Any) -> None:
        statement = str(args[2])
        if _TABLE.search(statement) and not _names_its_tenant(statement):
            unnamed.append(statement)

    engine = sql_backend.engine.sync_engine
    event.listen(engine, "before_cursor_execute", check)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", check)
    assert unnamed == []


def _ids(tenant: TenantId) -> list[EvaluationId]:
    prefix = TENANTS[tenant][0]
    return [EvaluationId(f"{prefix}-{n}") for n in range(3)]


def _other(tenant: TenantId) -> TenantId:
    return ACME if tenant == DEFAULT_TENANT else DEFAULT_TENANT


async def _fill(store: PortStore) -> None:
    """Each tenant's records, an event and a log of the first, then wait until each tenant's
    feed shows its entries (on PostgreSQL once every older transaction of the cluster has
    ended, as ``test_change_feed`` waits)."""
    for tenant, (prefix, status, language) in TENANTS.items():
        ids = _ids(tenant)
        async with store.session(tenant) as ports:
            for n, evaluation_id in enumerate(ids):
                await ports.repository.add(
                    make_evaluation(
                        evaluation_id,
                        created_at=BASE_TIME + timedelta(seconds=n),
                        status=status,
                        language=language,
                        runtime_ms=10 * (n + 1),
                        code=f"print('{prefix} marker')",
                    )
                )
                await ports.audit.append(
                    AuditEntry(
                        at=BASE_TIME,
                        actor=f"key-{prefix}",
                        action=AuditAction.CREATE,
                        evaluation_id=evaluation_id,
                        status=status,
                        version=1,
                    )
                )
        async with store.session(tenant) as ports:
            event = EvaluationEvent(
                evaluation_id=ids[0],
                event_id="e1",
                event_type="started",
                timestamp=BASE_TIME,
                message=f"{prefix} marker",
            )
            assert await ports.events.append(event)
            await ports.logs.append(
                ids[0], f"{prefix} log marker\n", BASE_TIME, last_update=BASE_TIME
            )
    with anyio.fail_after(30):
        for tenant in TENANTS:
            for _ in range(600):  # the feed can only be polled: nothing announces the horizon
                if len(await _changes(store, tenant)) >= len(_ids(tenant)):
                    break
                await anyio.sleep(0.05)


async def _changes(store: PortStore, tenant: TenantId) -> set[str]:
    async with store.session(tenant) as ports:
        page = await ports.changes.read(ChangeQuery(limit=100))
    return {change.evaluation_id for change in page.changes}


@pytest.mark.parametrize("tenant", [DEFAULT_TENANT, ACME])
async def test_reads_counts_and_statistics_see_the_tenants_own_records(
    sql_backend: PortStore, tenant: TenantId
) -> None:
    await _fill(sql_backend)
    mine, theirs = _ids(tenant), _ids(_other(tenant))
    _, status, language = TENANTS[tenant]
    async with sql_backend.session(tenant) as ports:
        for evaluation_id in theirs:
            assert await ports.repository.get(evaluation_id) is None
            assert await ports.repository.get_any(evaluation_id) is None
            assert await ports.repository.get_fields(evaluation_id, frozenset({"code"})) is None
            assert await ports.events.list(evaluation_id) == []
            assert (await ports.logs.read(evaluation_id)).content == ""
        assert (await ports.repository.get(mine[0])) is not None
        assert [e.event_id for e in await ports.events.list(mine[0])] == ["e1"]
        assert "marker" in (await ports.logs.read(mine[0])).content

        page = await ports.pages.list(EvaluationQuery(limit=10))
        assert [e.id for e in page.items] == mine[::-1]
        assert page.total == len(mine)
        listed = await ports.queries.list(EvaluationQuery(limit=10))
        assert sorted(e.id for e in listed.items) == sorted(mine) and listed.total == len(mine)
        # A filter that only the other tenant's records match finds nothing, and counts none.
        other_status = TENANTS[_other(tenant)][1]
        for where in (
            EvaluationFilter(status=other_status),
            EvaluationFilter(language=TENANTS[_other(tenant)][2]),
            EvaluationFilter(id_prefix=TENANTS[_other(tenant)][0]),
            EvaluationFilter(created_after=BASE_TIME - timedelta(days=1), status=other_status),
        ):
            empty = await ports.pages.list(EvaluationQuery(filter=where, limit=10))
            assert (empty.items, empty.total) == ([], 0), where
        found = await ports.pages.list(EvaluationQuery(filter=EvaluationFilter(status=status)))
        assert found.total == len(mine)

        statistics = await ports.queries.statistics()
        assert statistics.total == len(mine)
        assert statistics.by_status == {status.value: len(mine)}
        assert statistics.by_language == {language: len(mine)}
        assert statistics.runtime.count == len(mine) and statistics.runtime.max_ms == 30
        assert statistics.events == 1
        assert statistics.log_bytes == len(f"{TENANTS[tenant][0]} log marker\n")
        assert set(await ports.queries.tallies()) == set(mine)
        days = await ports.queries.daily_status_counts(BASE_TIME - timedelta(days=1))
        assert [(d.status, d.count) for d in days] == [(status.value, len(mine))]
        hours = await ports.queries.hourly_counts(BASE_TIME - timedelta(days=1))
        assert sum(h.count for h in hours) == len(mine)


@pytest.mark.parametrize("tenant", [DEFAULT_TENANT, ACME])
async def test_search_audit_and_changes_are_the_tenants_own(
    sql_backend: PortStore, tenant: TenantId
) -> None:
    await _fill(sql_backend)
    mine, theirs = _ids(tenant), _ids(_other(tenant))
    prefix = TENANTS[tenant][0]
    async with sql_backend.session(tenant) as ports:
        search = TextSearch("marker")
        hits = await ports.pages.list(EvaluationQuery(filter=EvaluationFilter(search=search)))
        assert sorted(e.id for e in hits.items) == sorted(mine) and hits.total == len(mine)
        texts = await ports.search.texts([*mine, *theirs], search)
        assert {t.evaluation_id for t in texts} == set(mine)
        assert all(prefix in t.text for t in texts)

        entries = await ports.audit.list(AuditQuery(limit=50))
        assert {e.evaluation_id for e in entries} == set(mine)
        assert {e.actor for e in entries} == {f"key-{prefix}"}
        assert await ports.audit.list(AuditQuery(evaluation_id=theirs[0])) == []
        assert await ports.audit.list(AuditQuery(actor=f"key-{TENANTS[_other(tenant)][0]}")) == []

        changes = await ports.changes.read(ChangeQuery(limit=100))
        assert {c.evaluation_id for c in changes.changes} == set(mine)
        latest = await ports.changes.latest()
        assert latest is not None and changes.reached == latest


@pytest.mark.parametrize("tenant", [DEFAULT_TENANT, ACME])
async def test_writes_never_reach_the_other_tenants_records(
    sql_backend: PortStore, tenant: TenantId
) -> None:
    await _fill(sql_backend)
    theirs = _ids(_other(tenant))
    async with sql_backend.session(_other(tenant)) as ports:
        before = await ports.repository.get(theirs[0])
        assert before is not None
    for attempt in ("update", "event", "log"):
        with pytest.raises(EvaluationNotFoundError):
            await _intrude(sql_backend, tenant, theirs[0], attempt)
    async with sql_backend.session(_other(tenant)) as ports:
        assert await ports.repository.get(theirs[0]) == before
        assert [e.event_id for e in await ports.events.list(theirs[0])] == ["e1"]
        assert "intruded" not in (await ports.logs.read(theirs[0])).content
        assert (await ports.queries.statistics()).events == 1


async def _intrude(store: PortStore, tenant: TenantId, theirs: EvaluationId, attempt: str) -> None:
    """As ``tenant``, change the other tenant's record ``theirs``: an update, an event or a
    log line, committed."""
    async with store.session(tenant) as ports:
        if attempt == "update":
            await ports.repository.update(make_evaluation(theirs, version=2, code="stolen"), 1)
        elif attempt == "event":
            event = EvaluationEvent(
                evaluation_id=theirs, event_id="e2", event_type="intruded", timestamp=BASE_TIME
            )
            await ports.events.append(event)
        else:
            await ports.logs.append(theirs, "intruded\n", BASE_TIME, last_update=BASE_TIME)
        await ports.uow.commit()


# --- The same id in both tenants (migration 0015). ---------------------------------------

SHARED = EvaluationId("shared-1")


def _shared_text(tenant: TenantId, what: str) -> str:
    return f"{TENANTS[tenant][0]} shared {what}"


async def _fill_shared(store: PortStore) -> None:
    """Each tenant creates ``SHARED``, then its event ``e1`` and a log at offset 0, each
    text naming its tenant."""
    for tenant, (_, status, language) in TENANTS.items():
        async with store.session(tenant) as ports:
            await ports.repository.add(
                make_evaluation(
                    SHARED,
                    status=status,
                    language=language,
                    code=f"print('{_shared_text(tenant, 'code')}')",
                )
            )
        async with store.session(tenant) as ports:
            event = EvaluationEvent(
                evaluation_id=SHARED,
                event_id="e1",
                event_type="started",
                timestamp=BASE_TIME,
                message=_shared_text(tenant, "event"),
            )
            assert await ports.events.append(event)
            log = f"{_shared_text(tenant, 'log')}\n"
            appended = await ports.logs.append(SHARED, log, BASE_TIME, last_update=BASE_TIME)
            assert appended.chunk.offset == 0


async def _assert_shared_is_own(store: PortStore, tenant: TenantId) -> None:
    async with store.session(tenant) as ports:
        record = await ports.repository.get(SHARED)
        assert record is not None and _shared_text(tenant, "code") in record.code
        events = await ports.events.list(SHARED)
        assert [(e.event_id, e.message) for e in events] == [("e1", _shared_text(tenant, "event"))]
        assert (await ports.logs.read(SHARED)).content == f"{_shared_text(tenant, 'log')}\n"
        statistics = await ports.queries.statistics()
        assert (statistics.total, statistics.events) == (1, 1)
        assert statistics.by_status == {TENANTS[tenant][1].value: 1}


@pytest.mark.parametrize("tenant", [DEFAULT_TENANT, ACME])
async def test_the_same_id_is_a_record_of_each_tenant(
    sql_backend: PortStore, tenant: TenantId
) -> None:
    await _fill_shared(sql_backend)
    await _assert_shared_is_own(sql_backend, tenant)
    async with sql_backend.session(tenant) as ports:
        # Within a tenant the id and the event id are still taken.
        again = EvaluationEvent(
            evaluation_id=SHARED, event_id="e1", event_type="started", timestamp=BASE_TIME
        )
        assert not await ports.events.append(again)
    with pytest.raises(DuplicateEvaluationError):
        async with sql_backend.session(tenant) as ports:
            await ports.repository.add(make_evaluation(SHARED))
    await _assert_shared_is_own(sql_backend, _other(tenant))


@pytest.mark.parametrize("tenant", [DEFAULT_TENANT, ACME])
async def test_a_search_finds_the_tenants_own_record_of_a_shared_id(
    sql_backend: PortStore, tenant: TenantId
) -> None:
    await _fill_shared(sql_backend)
    other = _other(tenant)
    async with sql_backend.session(tenant) as ports:
        for what in ("code", "event", "log"):
            theirs = TextSearch(_shared_text(other, what))
            for pages in (ports.pages, ports.queries):
                found = await pages.list(EvaluationQuery(filter=EvaluationFilter(search=theirs)))
                assert (found.items, found.total) == ([], 0), what
            mine = TextSearch(_shared_text(tenant, what))
            found = await ports.pages.list(EvaluationQuery(filter=EvaluationFilter(search=mine)))
            assert [e.id for e in found.items] == [SHARED], what
        texts = await ports.search.texts([SHARED], TextSearch("shared"))
        assert len(texts) == 3 and all(TENANTS[tenant][0] in t.text for t in texts)


@pytest.mark.parametrize("tenant", [DEFAULT_TENANT, ACME])
async def test_deleting_and_purging_a_shared_id_leaves_the_other_tenants(
    sql_backend: PortStore, tenant: TenantId
) -> None:
    await _fill_shared(sql_backend)
    async with sql_backend.session(tenant) as ports:
        record = await ports.repository.get(SHARED)
        assert record is not None
        deleted = make_evaluation(
            SHARED, status=EvaluationStatus.COMPLETED, deleted_at=BASE_TIME, version=2
        )
        await ports.repository.update(deleted, record.version)
    await _assert_shared_is_own(sql_backend, _other(tenant))

    everything = PurgeSelection(
        updated_before=BASE_TIME + timedelta(days=1),
        statuses=TERMINAL_STATUSES,
        include_deleted=True,
    )
    async with maintenance(sql_backend, tenant=tenant) as (purging, _):
        purged = await purging.purge([SHARED], everything)
    assert (purged.evaluation_ids, purged.events, purged.log_chunks) == ([SHARED], 1, 1)
    async with sql_backend.session(tenant) as ports:
        assert await ports.repository.get_any(SHARED) is None
        assert await ports.events.list(SHARED) == []
    await _assert_shared_is_own(sql_backend, _other(tenant))
    async with sql_backend.session(_other(tenant)) as ports:
        search = TextSearch(_shared_text(_other(tenant), "event"))
        found = await ports.pages.list(EvaluationQuery(filter=EvaluationFilter(search=search)))
        assert [e.id for e in found.items] == [SHARED]
