"""SQL adapters (SQLAlchemy Core) for SQLite via aiosqlite and PostgreSQL via asyncpg.

One code path serves both databases; dialect differences are confined to the
engine factory, the conflict-ignoring insert and the inspector.
"""
