"""Sealed values out of the search indexes (ADR 0031).

With ``ENCRYPTION=on`` the searched columns hold ``\\x1bcrse1:<base64>`` of ciphertext:
no search can match it (search is refused), and random text costs a trigram index some
thirty times more entries than prose. PostgreSQL: each trigram index becomes partial,
over values that are not sealed (the search's statements name the same condition).
SQLite: the triggers that fill the FTS5 table skip sealed values.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 18:15:00
"""

import importlib
import re

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"

# The search indexes and triggers of migration 0010, built here again with a condition.
_search = importlib.import_module("migrations.versions.0010_search_indexes")
SEALED = "E'\\x1bcrse1:'"  # infrastructure.crypto.columns.PREFIX, as a PostgreSQL literal


def not_sealed(column: str) -> str:
    """The PostgreSQL condition: ``column`` does not hold a sealed value."""
    return f"left({column}, 7) <> {SEALED}"


def upgrade() -> None:
    _rebuild(sealed_skipped=True)


def downgrade() -> None:
    _rebuild(sealed_skipped=False)


def _rebuild(*, sealed_skipped: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table, column in _search.PG_INDEXES:
            where = f" WHERE {not_sealed(column)}" if sealed_skipped else ""
            op.execute(f"DROP INDEX IF EXISTS {name}")
            op.execute(f"CREATE INDEX {name} ON {table} USING gin ({column} gin_trgm_ops){where}")
        return
    for trigger in _search.SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for statement in _search.SQLITE:
        if statement.startswith("CREATE TRIGGER"):  # the tables and their index stay
            op.execute(_skipping_sealed(statement) if sealed_skipped else statement)


def _skipping_sealed(trigger: str) -> str:
    """A search trigger whose inserts leave out sealed texts."""
    return re.sub(
        r"WHERE coalesce\((NEW\.\w+), ''\) <> ''",
        r"WHERE coalesce(\1, '') <> '' AND substr(\1, 1, 7) <> char(27) || 'crse1:'",
        trigger,
    )
