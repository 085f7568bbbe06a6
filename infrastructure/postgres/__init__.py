"""PostgreSQL hot paths on a bare asyncpg pool: the same ports as ``infrastructure.sql``.

Create, get by id, update, log and event appends pay one statement each with no
SQLAlchemy layer in between (measured in docs/benchmarks.md). Lists, statistics
and the inspector stay on SQLAlchemy Core, where building queries pays off.
"""
