"""``PlannerStatistics`` on PostgreSQL: ``ANALYZE`` of the tables whose statistics lag.

The thresholds are autovacuum's defaults (``autovacuum_analyze_threshold`` 50,
``autovacuum_analyze_scale_factor`` 0.1), compared with ``pg_stat_user_tables``'s
``n_mod_since_analyze``, so where autovacuum runs this finds little to do. A
transaction-scoped advisory lock lets one instance of the service at a time do it;
the lock goes with the transaction, so the pooled connection keeps no session state.
"""

import builtins

import asyncpg

from application.ports.planner_statistics import PlannerStatistics
from infrastructure.sql.tables import ALL_TABLES

THRESHOLD_ROWS = 50
SCALE_FACTOR = 0.1
# pg_try_advisory_xact_lock's key: "crucible" + "stats" in a signed 64-bit integer.
LOCK_KEY = 0x63727563_73746174
_TABLES = [table.name for table in ALL_TABLES]
# reltuples is -1 before a table's first ANALYZE or VACUUM: it counts as empty.
STALE = """
SELECT s.relname
  FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
 WHERE s.schemaname = current_schema() AND s.relname = ANY($1::text[])
   AND s.n_mod_since_analyze > $2 + $3 * greatest(c.reltuples, 0)
 ORDER BY s.relname
"""


class PgPlannerStatistics(PlannerStatistics):
    def __init__(self, pool: "asyncpg.Pool[asyncpg.Record]") -> None:
        self._pool = pool

    async def refresh(self) -> builtins.list[str]:
        async with self._pool.acquire() as connection, connection.transaction():
            if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY):
                return []
            rows = await connection.fetch(STALE, _TABLES, THRESHOLD_ROWS, SCALE_FACTOR)
            names = [str(row[0]) for row in rows]
            for name in names:  # names of the service's own tables, read back from the catalog
                await connection.execute(f'ANALYZE "{name}"')
        return names
