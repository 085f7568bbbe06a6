"""Indexes for text search over code, output, error, event messages and logs.

Two columns keep the last characters of a blob-stored output or error
(``SEARCH_TAIL_SIZE``), where a traceback ends: the output and error columns hold the
inline text or the preview (the head) of a large payload, so what is indexed stays bounded.

PostgreSQL: ``pg_trgm`` and a trigram GIN index on each searched column; ``ILIKE`` and
``~`` are served by them.

SQLite: an FTS5 table with the trigram tokenizer holds one row per searched text, and
``search_rows`` says whose text each is (the FTS row's id is its ``id``). Triggers keep
both in the writing statement's transaction; existing rows are copied in.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 10:30:00
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"

# (index, table, column) on PostgreSQL: ``idx_<table's short name>_<column>_trgm``.
PG_INDEXES = tuple(
    (f"idx_{short}_{column}_trgm", table, column)
    for table, short, columns in (
        ("evaluations", "evaluations", ("code", "output", "error", "output_tail", "error_tail")),
        ("evaluation_events", "events", ("message",)),
        ("log_chunks", "log_chunks", ("content",)),
    )
    for column in columns
)
RECORD_FIELDS = ("code", "output", "error")
# A record's searched columns and the field each is searched as.
RECORD_TEXTS = (
    ("code", "code"),
    ("output", "output"),
    ("error", "error"),
    ("output_tail", "output"),
    ("error_tail", "error"),
)


def _add(owner: str, field: str, text: str, source: str = "NULL") -> str:
    """Statements (in a trigger) that index ``text`` of ``owner`` when it is not empty."""
    return (
        f"INSERT INTO search_rows (evaluation_id, field, source) SELECT {owner}, '{field}', "
        f"{source} WHERE coalesce({text}, '') <> '';\n"
        f"INSERT INTO search_text (rowid, content) SELECT last_insert_rowid(), {text} "
        f"WHERE coalesce({text}, '') <> '';\n"
    )


def _drop(owner: str, fields: str) -> str:
    return (
        "DELETE FROM search_text WHERE rowid IN (SELECT id FROM search_rows "  # noqa: S608 (constants)
        f"WHERE evaluation_id = {owner} AND field IN ({fields}));\n"
        f"DELETE FROM search_rows WHERE evaluation_id = {owner} AND field IN ({fields});\n"
    )


RECORDS = "'code', 'output', 'error'"
EVERY = "'code', 'output', 'error', 'events', 'logs'"
SQLITE = [
    "CREATE VIRTUAL TABLE search_text USING fts5(content, tokenize = 'trigram')",
    "CREATE TABLE search_rows (id INTEGER PRIMARY KEY, evaluation_id VARCHAR(255) NOT NULL, "
    "field VARCHAR(16) NOT NULL, source BIGINT)",
    "CREATE INDEX idx_search_rows_owner ON search_rows (evaluation_id, field)",
    "CREATE TRIGGER search_evaluation_added AFTER INSERT ON evaluations BEGIN\n"
    + "".join(_add("NEW.id", field, f"NEW.{column}") for column, field in RECORD_TEXTS)
    + "END",
    "CREATE TRIGGER search_evaluation_changed AFTER UPDATE OF code, output, error, "
    "output_tail, error_tail ON evaluations BEGIN\n"
    + _drop("OLD.id", RECORDS)
    + "".join(_add("NEW.id", field, f"NEW.{column}") for column, field in RECORD_TEXTS)
    + "END",
    "CREATE TRIGGER search_evaluation_removed BEFORE DELETE ON evaluations BEGIN\n"
    + _drop("OLD.id", EVERY)
    + "END",
    "CREATE TRIGGER search_event_added AFTER INSERT ON evaluation_events BEGIN\n"
    + _add("NEW.evaluation_id", "events", "NEW.message", "NEW.id")
    + "END",
    "CREATE TRIGGER search_log_added AFTER INSERT ON log_chunks BEGIN\n"
    + _add("NEW.evaluation_id", "logs", "NEW.content", "NEW.id")
    + "END",
]
# Existing rows: a search row for each text, then its FTS row under the same id.
SQLITE_COPY = [
    *(
        f"INSERT INTO search_rows (evaluation_id, field) SELECT id, '{field}' "  # noqa: S608
        f"FROM evaluations WHERE coalesce({field}, '') <> ''"
        for field in RECORD_FIELDS
    ),  # (the tails are new: no row has one yet)
    "INSERT INTO search_rows (evaluation_id, field, source) SELECT evaluation_id, 'events', id "
    "FROM evaluation_events WHERE coalesce(message, '') <> ''",
    "INSERT INTO search_rows (evaluation_id, field, source) SELECT evaluation_id, 'logs', id "
    "FROM log_chunks WHERE content <> ''",
    "INSERT INTO search_text (rowid, content) SELECT r.id, CASE r.field "  # noqa: S608
    "WHEN 'code' THEN e.code WHEN 'output' THEN e.output ELSE e.error END "
    "FROM search_rows AS r JOIN evaluations AS e ON e.id = r.evaluation_id "
    f"WHERE r.field IN ({RECORDS})",
    "INSERT INTO search_text (rowid, content) SELECT r.id, v.message FROM search_rows AS r "
    "JOIN evaluation_events AS v ON v.id = r.source WHERE r.field = 'events'",
    "INSERT INTO search_text (rowid, content) SELECT r.id, c.content FROM search_rows AS r "
    "JOIN log_chunks AS c ON c.id = r.source WHERE r.field = 'logs'",
]
SQLITE_TRIGGERS = (
    "search_evaluation_added",
    "search_evaluation_changed",
    "search_evaluation_removed",
    "search_event_added",
    "search_log_added",
)


def upgrade() -> None:
    op.add_column("evaluations", sa.Column("output_tail", sa.Text()))
    op.add_column("evaluations", sa.Column("error_tail", sa.Text()))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, table, column in PG_INDEXES:
            op.execute(f"CREATE INDEX {name} ON {table} USING gin ({column} gin_trgm_ops)")
        return
    for statement in [*SQLITE, *SQLITE_COPY]:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, _, _ in PG_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        _drop_tails()
        return  # the extension stays: other schemas of the database may use it
    for trigger in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS search_rows")
    op.execute("DROP TABLE IF EXISTS search_text")
    _drop_tails()


def _drop_tails() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35): a rebuilt table would lose the triggers.
    for column in ("error_tail", "output_tail"):
        op.drop_column("evaluations", column)
