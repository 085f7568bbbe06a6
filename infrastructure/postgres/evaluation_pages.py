"""``EvaluationPages`` in hand-written SQL on the request's asyncpg connection.

A page and its total are one statement, so one round trip: the page (``limit + 1``
rows, the last one only saying that more follow) is joined laterally to a one-row
total, which an empty page keeps. The total comes from the counters the triggers keep
(a few rows) when the filter is by status and language alone, else from a count that
the filter's index serves. Statement texts are built once per shape of filter and
cached; asyncpg prepares each once per connection.

Same answers as ``SqlEvaluationQueries`` (the contract suite runs both on PostgreSQL).
"""

import builtins
from functools import lru_cache
from typing import Any

import msgspec

from application.ports.evaluation_pages import EvaluationPages
from application.queries import (
    EvaluationFilter,
    EvaluationPage,
    EvaluationQuery,
    ProjectedPage,
)
from application.search import SearchField, TextSearch
from domain.evaluation import Evaluation
from domain.tenancy import TenantId
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.postgres.tenancy import scoped
from infrastructure.postgres.transaction import PgTransaction
from infrastructure.sql.evaluation_queries import prefix_upper_bound
from infrastructure.sql.rows import (
    RECORD_COLUMNS,
    evaluation_from_values,
    evaluation_page,
    page_columns,
    projected_page,
)
from infrastructure.sql.search import pg_argument, pg_matching_ids


class _Shape(msgspec.Struct, frozen=True):
    """What a statement's text depends on: which filters, which paging, which columns."""

    status: bool
    language: bool
    created_after: bool
    created_before: bool
    id_prefix: bool
    prefix_bounded: bool
    cursor: bool
    offset: bool
    columns: tuple[str, ...]
    # The fields a search looks in and whether it is a pattern; None: no search.
    search: tuple[tuple[str, ...], bool] | None = None


def _shape_and_arguments(
    query: EvaluationQuery, columns: tuple[str, ...], tenant: TenantId
) -> tuple[_Shape, list[Any]]:
    where: EvaluationFilter = query.filter
    prefix = where.id_prefix or None
    upper = prefix_upper_bound(prefix) if prefix is not None else None
    arguments: list[Any] = [tenant] + [
        value
        for value in (
            where.status.value if where.status is not None else None,
            where.language,
            where.created_after,
            where.created_before,
            prefix,
            upper,
        )
        if value is not None
    ]
    search = where.search
    if search is not None:
        arguments.append(pg_argument(search))
    cursor = query.cursor
    if cursor is not None:
        arguments += [cursor.created_at, cursor.id]
    offset = cursor is None and query.offset > 0
    if offset:
        arguments.append(query.offset)
    arguments.append(max(query.limit, 0) + 1)
    shape = _Shape(
        status=where.status is not None,
        language=where.language is not None,
        created_after=where.created_after is not None,
        created_before=where.created_before is not None,
        id_prefix=prefix is not None,
        prefix_bounded=upper is not None,
        cursor=cursor is not None,
        offset=offset,
        columns=columns,
        search=None
        if search is None
        else (tuple(sorted(field.value for field in search.fields)), search.regex),
    )
    return shape, arguments


def page_query(
    query: EvaluationQuery, columns: tuple[str, ...], tenant: TenantId
) -> tuple[str, list[Any]]:
    """The statement ``PgEvaluationPages`` runs for ``query`` of ``tenant`` and its
    arguments: rows of ``columns`` (``limit + 1`` of them, the last only saying that more
    follow), each with the ``total`` column; an empty page is one row of NULLs and the
    total."""
    shape, arguments = _shape_and_arguments(query, columns, tenant)
    return page_statement(shape), arguments


class _Placeholders:
    def __init__(self) -> None:
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return f"${self.count}"


@lru_cache(maxsize=256)
def page_statement(shape: _Shape) -> str:
    """The page of ``shape`` and its total, in one statement; arguments in the order of
    ``_shape_and_arguments``. Column names come from the table (no input reaches here)."""
    slot = _Placeholders()
    # The tenant first: every index the page walks leads with it (migration 0013); the
    # statement sets it ($1) and reads it back from its scope (``scoped``).
    slot.next()
    tenant = "scope.tenant"
    conditions = [f"tenant_id = {tenant}", "deleted_at IS NULL"]
    counters = [f"tenant_id = {tenant}"]
    if shape.status:
        status = slot.next()
        conditions.append(f"status = {status}")
        counters.append(f"status = {status}")
    if shape.language:
        language = slot.next()
        conditions.append(f"language = {language}")
        counters.append(f"language = {language}")
    if shape.created_after:
        conditions.append(f"created_at >= {slot.next()}")
    if shape.created_before:
        conditions.append(f"created_at < {slot.next()}")
    if shape.id_prefix:
        # A range of the byte-ordered (text_pattern_ops) index on live ids, migration 0007,
        # then the exact, case-sensitive test; the range alone would do.
        prefix = slot.next()
        conditions.append(f"id ~>=~ {prefix}")
        if shape.prefix_bounded:
            conditions.append(f"id ~<~ {slot.next()}")
        conditions.append(f"starts_with(id, {prefix})")
    if shape.search is not None:
        fields, regex = shape.search
        search = TextSearch("", regex=regex, fields=frozenset(SearchField(f) for f in fields))
        conditions.append(f"id IN ({pg_matching_ids(search, slot.next())})")
    matching = " AND ".join(conditions)
    if shape.created_after or shape.created_before or shape.id_prefix or shape.search:
        total = f"SELECT count(*) FROM evaluations WHERE {matching}"  # noqa: S608
    else:
        counted = " AND ".join(counters)
        total = f"SELECT coalesce(sum(evaluations), 0) FROM evaluation_counters WHERE {counted}"  # noqa: S608
    page = matching
    if shape.cursor:
        page += f" AND (created_at, id) < ({slot.next()}, {slot.next()})"
    order = "ORDER BY created_at DESC, id DESC"
    columns = ", ".join(shape.columns)
    if shape.offset or shape.id_prefix:
        # The page is chosen in an index alone (the rows an offset skips, the prefix's ids
        # sorted by the created_at their index includes); only its own rows are read, by
        # key. ``ARRAY(...)`` makes the choice run once: as ``id IN (...)`` under row-level
        # security the planner ran it again for every row of the tenant (a nested-loop
        # semi-join: 16 s at 20,000 evaluations, ADR 0032).
        skip = f" OFFSET {slot.next()}" if shape.offset else ""
        rows = (
            f"SELECT {columns} FROM evaluations WHERE tenant_id = {tenant} "  # noqa: S608
            f"AND id = ANY(ARRAY(SELECT id FROM evaluations "
            f"WHERE {page} {order} LIMIT {slot.next()}{skip})) {order}"
        )
    else:
        rows = f"SELECT {columns} FROM evaluations WHERE {page} {order} LIMIT {slot.next()}"  # noqa: S608
    selected = ", ".join(f"page.{name}" for name in shape.columns)
    return scoped(
        f"SELECT {selected}, counted.total FROM ({total}) AS counted(total) "  # noqa: S608
        f"LEFT JOIN LATERAL ({rows}) AS page ON true",
        order="q.created_at DESC, q.id DESC",
    )


def _record(row: Any, seal: ColumnSeal) -> Evaluation:
    """The record of a page's row, which ends with the total's column."""
    return evaluation_from_values(row[:-1], seal)


class PgEvaluationPages(EvaluationPages):
    """Pages on the request's connection: one round trip, rows converted once."""

    def __init__(self, transaction: PgTransaction, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._seal = seal
        self._transaction = transaction

    async def _fetch(
        self, query: EvaluationQuery, columns: tuple[str, ...]
    ) -> tuple[builtins.list[Any], int]:
        """Up to ``limit + 1`` rows (without their total column) and the total."""
        statement, arguments = page_query(query, columns, self._transaction.tenant)
        rows = await self._transaction.read(
            lambda connection: connection.fetch(statement, *arguments)
        )
        total = int(rows[0][-1])
        if rows[0][columns.index("id")] is None:  # only the total's row: the page is empty
            return [], total
        return rows, total

    async def list(self, query: EvaluationQuery) -> EvaluationPage:
        rows, total = await self._fetch(query, RECORD_COLUMNS)
        return evaluation_page(rows, query.limit, total, lambda row: _record(row, self._seal))

    async def list_fields(self, query: EvaluationQuery, fields: frozenset[str]) -> ProjectedPage:
        rows, total = await self._fetch(query, tuple(page_columns(fields)))
        return projected_page(rows, query.limit, total, fields, self._seal)
