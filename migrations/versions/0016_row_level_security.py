"""Row-level security beneath the application's tenant filter (ADR 0032, decisions 4, 5, 8).

PostgreSQL only; on SQLite, which has no row-level security, this revision does nothing
(there the application's filter and its tests are the guarantee).

Every table with ``tenant_id`` gets ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` (``FORCE``
binds the tables' owner too, so a deployment on one role is protected as well) and the
policy ``tenant_isolation``: a row is seen, written and kept only while ``tenant_id`` is
the setting ``crucible.tenant`` (``set_config(…, true)``, local to a transaction). With
none set, nothing is seen. The column's default becomes the setting itself, read without
``missing_ok``: an insert that names no tenant and runs unscoped fails.

Search and the subject lookup are not indexed under the policies: ``ILIKE``, ``~`` and
``@>`` are not ``LEAKPROOF``, so the planner tests the policy first, row by row.
``crucible_search_ids(pattern, regex, fields)`` and ``crucible_subject_ids(key, value)``
run the indexed lookups (ADR 0026's union, ADR 0029's containment) for the tenant they
read from the setting inside (unset, they raise; no parameter names a tenant). Owned by
``crucible_lookup`` (``NOLOGIN BYPASSRLS``, made once by a superuser, the owner a
member) they are ``SECURITY DEFINER`` and use their indexes; without that role, or when
the migrating role may not give it the functions, they stay ``SECURITY INVOKER``: the
same answers, under the policies, unindexed (the service says so at start).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 09:00:00
"""

# Every statement below is built from constants of this module (no input reaches them).
# ruff: noqa: S608

import importlib

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"

_tenants = importlib.import_module("migrations.versions.0013_tenant_columns")
# Every table with ``tenant_id``: migration 0013's and 0014's key table.
TABLES = (*_tenants.TABLES, "evaluation_keys")
SETTING = "crucible.tenant"
POLICY = "tenant_isolation"
MATCHES = f"tenant_id = current_setting('{SETTING}', true)"
LOOKUP_ROLE = "crucible_lookup"
# The tables the functions read, which their owner must be able to.
LOOKUP_TABLES = ("evaluations", "evaluation_events", "log_chunks")
SEALED = "E'\\x1bcrse1:'"  # as migration 0012's partial trigram indexes leave out
# Where each searched field's texts are (ADR 0026): field, id column, table, text column.
SEARCH_SOURCES = (
    ("code", "id", "evaluations", "code"),
    ("output", "id", "evaluations", "output"),
    ("output", "id", "evaluations", "output_tail"),
    ("error", "id", "evaluations", "error"),
    ("error", "id", "evaluations", "error_tail"),
    ("events", "evaluation_id", "evaluation_events", "message"),
    ("logs", "evaluation_id", "log_chunks", "content"),
)
SEARCH_SIGNATURE = "crucible_search_ids(text, boolean, text[])"
SUBJECT_SIGNATURE = "crucible_subject_ids(text, text)"
# The setting read without ``missing_ok``: a lookup with no tenant set raises.
TENANT = f"current_setting('{SETTING}')"


def policy_statements() -> list[str]:
    """``ENABLE``, ``FORCE`` and the policy on every tenant table, the setting's default."""
    statements: list[str] = []
    for table in TABLES:
        statements += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"CREATE POLICY {POLICY} ON {table} USING ({MATCHES}) WITH CHECK ({MATCHES})",
            f"ALTER TABLE {table} ALTER COLUMN tenant_id SET DEFAULT {TENANT}",
        ]
    return statements


def _sources() -> str:
    return ", ".join(
        f"('{field}', '{key}', '{table}', '{column}')"
        for field, key, table, column in SEARCH_SOURCES
    )


# One indexed lookup per source of the fields asked for, their union run by ``EXECUTE``:
# planned for the pattern at hand (a trigram index's worth depends on it), where a
# statement of the function's own would get a plan made for any pattern.
FUNCTIONS = (
    f"""
CREATE FUNCTION crucible_search_ids(pattern text, regex boolean, fields text[])
RETURNS SETOF varchar LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
DECLARE
    tenant text := {TENANT};
    lookups text;
BEGIN
    SELECT string_agg(format(
        'SELECT %I FROM %I WHERE tenant_id = $2 AND %I %s $1 AND left(%I, 7) <> %L',
        source.key, source.tab, source.col, CASE WHEN regex THEN '~' ELSE 'ILIKE' END,
        source.col, {SEALED}), ' UNION ')
    INTO lookups
    FROM (VALUES {_sources()}) AS source (field, key, tab, col)
    WHERE source.field = ANY (fields);
    IF lookups IS NOT NULL THEN
        RETURN QUERY EXECUTE lookups USING pattern, tenant;
    END IF;
END
$$""",
    "CREATE FUNCTION crucible_subject_ids(key text, value text) "
    "RETURNS SETOF varchar LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$\n"
    f"    SELECT id FROM evaluations WHERE tenant_id = {TENANT} "
    "AND metadata @> jsonb_build_object($1, $2) AND metadata ->> $1 = $2\n$$",
)
# Given to ``crucible_lookup`` when it exists and the migrating role may (a superuser, or
# a member of it while it may create in the schema); else left as they are.
TO_LOOKUP = f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{LOOKUP_ROLE}') THEN
        BEGIN
            GRANT SELECT ON {", ".join(LOOKUP_TABLES)} TO {LOOKUP_ROLE};
            ALTER FUNCTION {SEARCH_SIGNATURE} SECURITY DEFINER;
            ALTER FUNCTION {SEARCH_SIGNATURE} OWNER TO {LOOKUP_ROLE};
            ALTER FUNCTION {SUBJECT_SIGNATURE} SECURITY DEFINER;
            ALTER FUNCTION {SUBJECT_SIGNATURE} OWNER TO {LOOKUP_ROLE};
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'the search functions stay SECURITY INVOKER: %', SQLERRM;
        END;
    END IF;
END
$$
"""
FROM_LOOKUP = f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{LOOKUP_ROLE}') THEN
        REVOKE SELECT ON {", ".join(LOOKUP_TABLES)} FROM {LOOKUP_ROLE};
    END IF;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in [*policy_statements(), *FUNCTIONS, TO_LOOKUP]:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION {SEARCH_SIGNATURE}")
    op.execute(f"DROP FUNCTION {SUBJECT_SIGNATURE}")
    op.execute(FROM_LOOKUP)
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN tenant_id SET DEFAULT 'default'")
        op.execute(f"DROP POLICY {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
