"""Alembic migrations: one history for SQLite and PostgreSQL.

Run them with ``infrastructure.sql.migrate.upgrade(database_url)`` (or
``python -m infrastructure.sql.migrate upgrade``); ``script_location`` is this
package's directory, so they work from an installed wheel too.
"""
