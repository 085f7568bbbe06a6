"""Search in SQL: which evaluations hold a text, served by an index on either database.

PostgreSQL: trigram GIN indexes (``pg_trgm``, migration 0010) on the searched columns;
the hits are the union of one indexed lookup per field (``ILIKE`` for text, ``~`` for a
pattern), so each field's index serves its part.
SQLite: an FTS5 table with the trigram tokenizer (``search_text``, one row per searched
text, ``search_rows`` saying whose; kept by triggers in the writes' own transactions): a
text is a phrase ``MATCH``; a pattern is tested by ``REGEXP`` (RE2, registered on each
connection) over the same table's texts.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from application.ports.search_texts import SearchTexts
from application.search import SearchField, SearchText, TextSearch, record_texts
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from infrastructure.crypto.columns import NO_COLUMN_SEAL, ColumnSeal
from infrastructure.sql.dialect import dialect_name
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.rows import evaluation_from_row
from infrastructure.sql.tables import evaluation_events, evaluations, log_chunks
from infrastructure.sql.tenancy import session_tenant

# SQLite's FTS5 table and whose text each of its rows is (migration 0010): not in the
# metadata, which cannot create a virtual table.
search_text = sa.table("search_text", sa.column("rowid"), sa.column("content"))
search_rows = sa.table(
    "search_rows",
    sa.column("id"),
    sa.column("tenant_id"),
    sa.column("evaluation_id"),
    sa.column("field"),
)


def pg_argument(search: TextSearch) -> str:
    """The one argument of the PostgreSQL search: an ``ILIKE`` pattern, or the regex."""
    return search.pattern if search.regex else search.like()


def pg_matching_ids(search: TextSearch, placeholder: str) -> str:
    """``SELECT`` of the ids of the setting's tenant whose searched fields match
    ``placeholder`` (see ``pg_argument``): ``crucible_search_ids`` (migration 0016), whose
    union of trigram lookups stays indexed under row-level security.

    The fields and the operator are constants of ``search``'s shape; the user's text is
    the bound argument.
    """
    fields = ", ".join(f"'{field.value}'" for field in sorted(search.fields))
    regex = "true" if search.regex else "false"
    return f"SELECT crucible_search_ids({placeholder}, {regex}, ARRAY[{fields}]::text[])"


def fts_phrase(text: str) -> str:
    """``text`` as one FTS5 phrase: a substring match under the trigram tokenizer."""
    return '"' + text.replace('"', '""') + '"'


def search_condition(search: TextSearch, dialect: str, tenant: TenantId) -> sa.ColumnElement[bool]:
    """``evaluations.id`` is among the hits of ``search`` in ``tenant``'s texts."""
    if dialect == "postgresql":
        ids = sa.text(pg_matching_ids(search, ":search")).bindparams(search=pg_argument(search))
        return evaluations.c.id.in_(ids.columns(sa.column("id", sa.String)))
    if search.regex:
        matched = search_text.c.content.regexp_match(search.pattern)
    else:
        matched = sa.literal_column("search_text").op("MATCH")(fts_phrase(search.pattern))
    texts = sa.select(search_text.c.rowid).where(matched)
    owners = sa.select(search_rows.c.evaluation_id).where(
        search_rows.c.tenant_id == tenant,
        search_rows.c.id.in_(texts),
        search_rows.c.field.in_([field.value for field in search.fields]),
    )
    return evaluations.c.id.in_(owners)


def _text_test(search: TextSearch, column: sa.ColumnElement[Any], dialect: str) -> Any:
    if search.regex:
        return column.regexp_match(search.pattern)
    if dialect == "postgresql":
        return column.ilike(search.like(), escape="\\")
    return column.like(search.like(), escape="\\")  # the caller finds the match itself


class SqlSearchTexts(SearchTexts):
    def __init__(self, session: AsyncSession, seal: ColumnSeal = NO_COLUMN_SEAL) -> None:
        self._seal = seal
        self._session = session

    async def texts(self, ids: Sequence[EvaluationId], search: TextSearch) -> list[SearchText]:
        if not ids:
            return []
        dialect = dialect_name(self._session)
        tenant = session_tenant(self._session)
        wanted = list(ids)
        found: list[SearchText] = []
        with translate_errors():
            records = await self._session.execute(
                sa.select(evaluations).where(
                    evaluations.c.tenant_id == tenant, evaluations.c.id.in_(wanted)
                )
            )
            for row in records.mappings():
                found += record_texts(evaluation_from_row(row, self._seal), search)
            for field in (SearchField.EVENTS, SearchField.LOGS):
                if search.looks_in(field):
                    statement = _timeline_texts(field, search, dialect, tenant, wanted)
                    found += [
                        SearchText(
                            evaluation_id=owner, field=field, text=text, start=start, event_id=event
                        )
                        for owner, text, start, event in await self._session.execute(statement)
                    ]
        return found


def _timeline_texts(
    field: SearchField, search: TextSearch, dialect: str, tenant: TenantId, ids: list[EvaluationId]
) -> sa.Select[Any]:
    """``(evaluation_id, text, start, event_id)`` of the events or log pieces of ``tenant``'s
    ``ids`` that match."""
    if field is SearchField.EVENTS:
        events = evaluation_events.c
        return (
            sa.select(events.evaluation_id, events.message, sa.literal(0), events.event_id)
            .where(
                events.tenant_id == tenant,
                events.evaluation_id.in_(ids),
                _text_test(search, events.message, dialect),
            )
            .order_by(events.evaluation_id, events.timestamp, events.id)
        )
    logs = log_chunks.c
    return (
        sa.select(logs.evaluation_id, logs.content, logs.start_offset, sa.null())
        .where(
            logs.tenant_id == tenant,
            logs.evaluation_id.in_(ids),
            _text_test(search, logs.content, dialect),
        )
        .order_by(logs.evaluation_id, logs.start_offset)
    )
