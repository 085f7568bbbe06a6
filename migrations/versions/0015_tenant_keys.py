"""Keys led by the tenant (ADR 0032, decision 2).

An evaluation is ``(tenant_id, id)``: two tenants may hold the same id, and neither a
``POST`` with a chosen id nor an import tells one tenant that another holds it.
``evaluation_events`` and ``log_chunks`` point at their record by ``(tenant_id,
evaluation_id)`` (``ON DELETE CASCADE`` as before), so a row cannot belong to another
tenant's record; their uniques become ``(tenant_id, evaluation_id, event_id)`` and
``(tenant_id, evaluation_id, start_offset)``. ``idempotency_keys`` is keyed by
``(tenant_id, caller, key)``. The rows that keep ``event_count`` (PostgreSQL's
statement-level trigger functions and ``evaluation_counters_rebuild()``, SQLite's row
triggers) find their record by tenant and id. SQLite's search rows (migration 0010) name
their tenant too, so that a record's triggers index and drop its own texts only.

Unchanged: ``evaluation_keys`` is keyed by ``(tenant_id, evaluation_id)`` already (0014),
the counters by tenant since 0013, ``audit_log`` by its own sequence, and
``journal_applied`` by ``entry_id``: entry ids are random and name one change of one
tenant, whose tenant the row holds for the policy.

SQLite cannot change a key in place: each table is renamed aside, made again from its
stored ``CREATE TABLE`` with the keys edited, filled with its rows and the old one
dropped; its indexes and triggers (the counters', ``event_count``'s and the search's) are
made again from their stored text. Renaming aside, rather than dropping the original as
Alembic's batch mode does, keeps ``ON DELETE CASCADE`` from emptying the children when
foreign keys are enforced (the service's connections turn them on).

A downgrade needs every id held by one tenant at most (and every caller's key): it refuses
otherwise, naming a few of them.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 09:00:00
"""

# Every statement below is built from constants of this module (no input reaches them).
# ruff: noqa: S608

import importlib

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"

_tenants = importlib.import_module("migrations.versions.0013_tenant_columns")

# --- PostgreSQL: constraints dropped and added in place. --------------------------------

# The tables whose rows belong to a record, and their unique constraints.
OWNED = {
    "evaluation_events": "uq_events_evaluation_event",
    "log_chunks": "uq_log_chunks_evaluation_offset",
}
UNIQUE_TAIL = {"evaluation_events": "event_id", "log_chunks": "start_offset"}


def _fk_name(table: str, *, tenant: bool) -> str:
    return f"fk_{table}_{'tenant_id' if tenant else 'evaluation_id'}_evaluations"


def _pg_keys(*, tenant: bool) -> list[str]:
    """The statements that key every table by (or without) the tenant."""
    lead = "tenant_id, " if tenant else ""
    statements = [
        f"ALTER TABLE {table} DROP CONSTRAINT {_fk_name(table, tenant=not tenant)}, "
        f"DROP CONSTRAINT {unique}"
        for table, unique in OWNED.items()
    ]
    statements.append(
        "ALTER TABLE evaluations DROP CONSTRAINT pk_evaluations, "
        f"ADD CONSTRAINT pk_evaluations PRIMARY KEY ({lead}id)"
    )
    statements += [
        f"ALTER TABLE {table} "
        f"ADD CONSTRAINT {unique} UNIQUE ({lead}evaluation_id, {UNIQUE_TAIL[table]}), "
        f"ADD CONSTRAINT {_fk_name(table, tenant=tenant)} FOREIGN KEY ({lead}evaluation_id) "
        f"REFERENCES evaluations ({lead}id) ON DELETE CASCADE"
        for table, unique in OWNED.items()
    ]
    statements.append(
        "ALTER TABLE idempotency_keys DROP CONSTRAINT pk_idempotency_keys, "
        f"ADD CONSTRAINT pk_idempotency_keys PRIMARY KEY ({lead}caller, key)"
    )
    return statements


def _pg_events_function(operation: str, *, tenant: bool) -> str:
    """Migration 0003's ``event_count`` function, finding each record by (or without) its
    tenant."""
    sign, table = ("+", "new_rows") if operation == "insert" else ("-", "old_rows")
    owner = "tenant_id, evaluation_id" if tenant else "evaluation_id"
    same = "e.tenant_id = n.tenant_id AND " if tenant else ""
    return f"""
CREATE OR REPLACE FUNCTION evaluation_events_count_{operation}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE evaluations e SET event_count = e.event_count {sign} n.count
    FROM (SELECT {owner}, COUNT(*) AS count FROM {table} GROUP BY {owner}) n
    WHERE {same}e.id = n.evaluation_id;
    RETURN NULL;
END
$$
"""


PG_REBUILD_FUNCTION = (
    "CREATE OR REPLACE FUNCTION evaluation_counters_rebuild() RETURNS void "
    "LANGUAGE sql AS $$ "
    "UPDATE evaluations e SET event_count = n.count FROM (SELECT tenant_id, evaluation_id, "
    "COUNT(*) AS count FROM evaluation_events GROUP BY tenant_id, evaluation_id) n "
    "WHERE e.tenant_id = n.tenant_id AND e.id = n.evaluation_id "
    "AND e.event_count <> n.count; " + "; ".join(_tenants.rebuild(_tenants.bucketed)) + " $$"
)


# --- SQLite: tables made again from their stored text, edited. ---------------------------

# (text before, text after) in each table's stored ``CREATE TABLE``, each found once.
SQLITE_KEYS = {
    "evaluations": [("PRIMARY KEY (id)", "PRIMARY KEY (tenant_id, id)")],
    **{
        table: [
            (
                f"CONSTRAINT {_fk_name(table, tenant=False)} FOREIGN KEY(evaluation_id) "
                "REFERENCES evaluations (id)",
                f"CONSTRAINT {_fk_name(table, tenant=True)} "
                "FOREIGN KEY(tenant_id, evaluation_id) REFERENCES evaluations (tenant_id, id)",
            ),
            (
                f"UNIQUE (evaluation_id, {UNIQUE_TAIL[table]})",
                f"UNIQUE (tenant_id, evaluation_id, {UNIQUE_TAIL[table]})",
            ),
        ]
        for table in OWNED
    },
    "idempotency_keys": [
        ('PRIMARY KEY (caller, "key")', 'PRIMARY KEY (tenant_id, caller, "key")'),
    ],
}
# The same in the triggers' stored text: ``event_count``'s (migration 0003) and the
# search's (0010, 0012) find their record, and their search rows, by tenant and id.
SQLITE_TRIGGER_KEYS = [
    *(
        (
            f"WHERE id = {row}.evaluation_id",
            f"WHERE tenant_id = {row}.tenant_id AND id = {row}.evaluation_id",
        )
        for row in ("NEW", "OLD")
    ),
    (
        "INSERT INTO search_rows (evaluation_id, field, source) SELECT NEW.",
        "INSERT INTO search_rows (tenant_id, evaluation_id, field, source) "
        "SELECT NEW.tenant_id, NEW.",
    ),
    (
        "WHERE evaluation_id = OLD.id",
        "WHERE tenant_id = OLD.tenant_id AND evaluation_id = OLD.id",
    ),
]
# Parents after their children when renamed aside and dropped, before them when made.
REBUILT = ("evaluation_events", "log_chunks", "evaluations", "idempotency_keys")


def _edited(text: str, edits: list[tuple[str, str]], *, tenant: bool, name: str) -> str:
    for before, after in edits:
        old, new = (before, after) if tenant else (after, before)
        if text.count(old) != 1:
            raise RuntimeError(f"{name}: expected {old!r} once in its stored definition")
        text = text.replace(old, new)
    return text


def _triggers_edited(triggers: list[tuple[str, str]], *, tenant: bool) -> list[str]:
    """The triggers' text with ``SQLITE_TRIGGER_KEYS`` applied, each edit somewhere."""
    edits = [(old, new) if tenant else (new, old) for old, new in SQLITE_TRIGGER_KEYS]
    texts = [text for _, text in triggers]
    for old, new in edits:
        if not any(old in text for text in texts):
            raise RuntimeError(f"no stored trigger holds {old!r}")
        texts = [text.replace(old, new) for text in texts]
    return texts


def _stored(kind: str, table: str) -> list[tuple[str, str]]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type = :kind AND tbl_name = :table "
            "AND sql IS NOT NULL ORDER BY rowid"
        ),
        {"kind": kind, "table": table},
    )
    return [(str(name), str(sql)) for name, sql in rows]


def _sqlite_rebuild(*, tenant: bool) -> None:
    tables = {table: _stored("table", table)[0][1] for table in REBUILT}
    indexes = [index for table in REBUILT for index in _stored("index", table)]
    triggers = [trigger for table in REBUILT for trigger in _stored("trigger", table)]
    for name, _ in indexes:
        op.execute(f"DROP INDEX {name}")
    for table in REBUILT:  # its triggers go along, and are dropped with it
        op.execute(f"ALTER TABLE {table} RENAME TO _{table}_old")
    for table in reversed(REBUILT):
        op.execute(_edited(tables[table], SQLITE_KEYS[table], tenant=tenant, name=table))
        op.execute(f"INSERT INTO {table} SELECT * FROM _{table}_old")
    for table in REBUILT:
        op.execute(f"DROP TABLE _{table}_old")
    for _, sql in indexes:
        op.execute(sql)
    for sql in _triggers_edited(triggers, tenant=tenant):
        op.execute(sql)


def _sqlite_search_rows(*, tenant: bool) -> None:
    """Search rows name their record's tenant (taken from the record while ids are
    unique), and are found by it."""
    op.execute("DROP INDEX idx_search_rows_owner")
    if tenant:
        op.execute(
            f"ALTER TABLE search_rows ADD COLUMN tenant_id VARCHAR(63) NOT NULL "
            f"DEFAULT '{_tenants.DEFAULT}'"
        )
        op.execute(
            "UPDATE search_rows SET tenant_id = coalesce((SELECT e.tenant_id FROM evaluations e "
            f"WHERE e.id = search_rows.evaluation_id), '{_tenants.DEFAULT}')"
        )
        op.execute(
            "CREATE INDEX idx_search_rows_owner ON search_rows (tenant_id, evaluation_id, field)"
        )
        return
    op.execute("ALTER TABLE search_rows DROP COLUMN tenant_id")
    op.execute("CREATE INDEX idx_search_rows_owner ON search_rows (evaluation_id, field)")


# --- Upgrade and downgrade. -------------------------------------------------------------


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        _sqlite_search_rows(tenant=True)
        _sqlite_rebuild(tenant=True)
        return
    for statement in _pg_keys(tenant=True):
        op.execute(statement)
    for operation in ("insert", "delete"):
        op.execute(_pg_events_function(operation, tenant=True))
    op.execute(PG_REBUILD_FUNCTION)


SHARED = {
    "evaluation ids": "SELECT id FROM evaluations GROUP BY id HAVING COUNT(*) > 1 ORDER BY id",
    "idempotency keys (caller/key)": "SELECT caller || '/' || \"key\" FROM idempotency_keys "
    'GROUP BY caller, "key" HAVING COUNT(*) > 1 ORDER BY 1',
}


def _refuse_shared_keys() -> None:
    """The old keys hold one tenant's row each: refuse while any is held by more."""
    for what, query in SHARED.items():
        shared = [str(row[0]) for row in op.get_bind().execute(sa.text(f"{query} LIMIT 5"))]
        if shared:
            raise RuntimeError(
                f"cannot downgrade below 0015: {what} held by more than one tenant "
                f"(e.g. {', '.join(shared)}); delete or rename all but one tenant's first"
            )


def downgrade() -> None:
    _refuse_shared_keys()
    if op.get_bind().dialect.name != "postgresql":
        _sqlite_rebuild(tenant=False)
        _sqlite_search_rows(tenant=False)
        return
    for operation in ("insert", "delete"):
        op.execute(_pg_events_function(operation, tenant=False))
    op.execute(_tenants.PG_REBUILD_FUNCTION)
    for statement in _pg_keys(tenant=False):
        op.execute(statement)
