"""Whether search and the subject lookup are indexed under row-level security.

Migration 0016 makes ``crucible_search_ids`` and ``crucible_subject_ids`` ``SECURITY
DEFINER`` owned by ``crucible_lookup`` (``BYPASSRLS``) when that role exists and the
migrating role may give them to it; otherwise they run as the caller, under the
policies, which the planner tests before any ``ILIKE``, ``~`` or ``@>``: the same
answers, by scanning the tenant's rows (ADR 0032, decision 8).
"""

import asyncpg

LOOKUPS = ("crucible_search_ids", "crucible_subject_ids")
_DEFINED_BY_BYPASSING_ROLE = """
SELECT count(*) FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
WHERE p.proname = ANY($1::text[]) AND p.pronamespace = current_schema()::regnamespace
  AND p.prosecdef AND (r.rolbypassrls OR r.rolsuper)
"""


async def unindexed_lookups(pool: "asyncpg.Pool[asyncpg.Record]") -> bool:
    """True when a lookup function runs under the policies: a catalog read, no table's."""
    async with pool.acquire() as connection:
        indexed = await connection.fetchval(_DEFINED_BY_BYPASSING_ROLE, list(LOOKUPS))
    return int(indexed or 0) < len(LOOKUPS)
