"""``SealedRows`` in SQL (both databases): the sealed values of records, events and log
pieces re-wrapped under the active key, a batch of rows per transaction (ADR 0031).

A round per tenant, each session bound to it (ADR 0032): under row-level security a
session sees its tenant's rows only, the tables' owner's too (``FORCE``). The tenants are
those the deployment serves (``API_KEYS``) and any other a session can see rows of
(SQLite's, or a superuser's): a tenant whose key was removed keeps its rows, which only a
role that bypasses the policies can list on PostgreSQL.
"""

from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from application.ports.sealed_blobs import Rewrap, RewrapBatch, SealedRows
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.crypto.columns import PREFIX, ColumnSeal
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.rows import SEALED_COLUMNS, sealed_row
from infrastructure.sql.tables import evaluation_events, evaluations, log_chunks
from infrastructure.sql.tenancy import bind_tenant
from infrastructure.sql.timeline import event_row, log_row

# Each table: its key column, its sealed text columns, and what a row's values are bound to.
_Table = tuple[sa.Table, sa.Column[Any], tuple[str, ...], Callable[[Any], str]]
_TABLES: tuple[_Table, ...] = (
    (evaluations, evaluations.c.id, SEALED_COLUMNS, lambda row: sealed_row(row["id"])),
    (
        evaluation_events,
        evaluation_events.c.id,
        ("message",),
        lambda row: event_row(row["evaluation_id"], row["event_id"]),
    ),
    (
        log_chunks,
        log_chunks.c.id,
        ("content",),
        lambda row: log_row(row["evaluation_id"], int(row["start_offset"])),
    ),
)


class SqlSealedRows(SealedRows):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        seal: ColumnSeal,
        served: Sequence[TenantId] = (DEFAULT_TENANT,),
    ) -> None:
        self._sessions = sessions
        self._seal = seal
        self._served = tuple(served)

    async def _tenants(self) -> list[TenantId]:
        """The tenants served, then those of any row visible without a tenant set."""
        async with self._sessions() as session:
            with translate_errors():
                seen = await session.execute(
                    sa.union(*(sa.select(table.c.tenant_id) for table, *_ in _TABLES))
                )
                present = {TenantId(row[0]) for row in seen}
        return list(dict.fromkeys([*self._served, *sorted(present)]))

    async def count(self) -> int:
        total = 0
        for tenant in await self._tenants():
            async with bind_tenant(self._sessions(), tenant) as session:
                with translate_errors():
                    for table, *_ in _TABLES:
                        statement = (
                            sa.select(sa.func.count())
                            .select_from(table)
                            .where(table.c.tenant_id == tenant)
                        )
                        total += int(await session.scalar(statement) or 0)
        return total

    async def rewrap(self, batch_size: int) -> AsyncIterator[RewrapBatch]:
        for tenant in await self._tenants():
            for table, key, columns, row_of in _TABLES:
                after: Any = None
                while True:
                    async with bind_tenant(self._sessions(), tenant) as session, session.begin():
                        with translate_errors():
                            rows = await self._page(session, tenant, table, key, after, batch_size)
                            if not rows:
                                break
                            outcomes: Counter[Rewrap] = Counter()
                            for row in rows:
                                await self._rewrap_row(
                                    session, table, key, columns, row_of, row, outcomes
                                )
                    after = rows[-1][key.name]
                    yield RewrapBatch(rows=len(rows), outcomes=outcomes)

    @staticmethod
    async def _page(
        session: AsyncSession,
        tenant: TenantId,
        table: sa.Table,
        key: sa.Column[Any],
        after: Any,
        size: int,
    ) -> list[sa.RowMapping]:
        statement = sa.select(table).where(table.c.tenant_id == tenant).order_by(key).limit(size)
        if after is not None:
            statement = statement.where(key > after)
        return list((await session.execute(statement)).mappings().all())

    async def _rewrap_row(
        self,
        session: AsyncSession,
        table: sa.Table,
        key: sa.Column[Any],
        columns: tuple[str, ...],
        row_of: Callable[[Any], str],
        row: sa.RowMapping,
        outcomes: Counter[Rewrap],
    ) -> None:
        bound = row_of(row)
        seal = self._seal.of(TenantId(row["tenant_id"]))
        changed: dict[str, Any] = {}
        for column in columns:
            value = row[column]
            if value is None:
                continue
            outcome, stored = seal.rewrap(bound, column, value)
            outcomes[outcome] += 1
            if stored != value:
                changed[column] = stored
        if table is evaluations and self._seal.metadata_keys:
            metadata = dict(row["metadata"] or {})
            for name in self._seal.metadata_keys & metadata.keys():
                value = metadata[name]
                if isinstance(value, str) and value.startswith(PREFIX):
                    outcome, metadata[name] = seal.rewrap(bound, f"metadata.{name}", value)
                    outcomes[outcome] += 1
            if metadata != row["metadata"]:
                changed["metadata"] = metadata
        if not changed:
            return
        # Only where each value is still the one read: a write since then stored its own.
        unchanged = [table.c[column] == row[column] for column in changed if column != "metadata"]
        version = [table.c.version == row["version"]] if table is evaluations else []
        mine = [table.c.tenant_id == row["tenant_id"], key == row[key.name]]
        await session.execute(sa.update(table).where(*mine, *unchanged, *version).values(changed))
