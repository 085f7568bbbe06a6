"""Evaluation keys on the asyncpg pool: each call one autocommitted statement (ADR 0033).

Reads and the insert set their tenant themselves (``tenancy``); an ``UPDATE`` or
``DELETE`` cannot, and runs in a transaction of its own (``tenancy.in_transaction``).
"""

from collections.abc import Sequence
from typing import Any

import asyncpg

from application.ports.evaluation_keys import EvaluationKeys, WrappedKey
from domain.tenancy import DEFAULT_TENANT, TenantId
from infrastructure.postgres.tenancy import SCOPE, SCOPE_TENANT, in_transaction, scoped
from infrastructure.postgres.transaction import rows_affected
from infrastructure.sql.errors import translate_errors

# $1 the tenant, in every statement.
FETCH = scoped(
    "SELECT kid, wrapped FROM evaluation_keys WHERE tenant_id = scope.tenant AND evaluation_id = $2"
)
# The row inserted, or else the one that was there (a concurrent add's, once committed).
ADD = f"""
WITH {SCOPE}, added AS (
    INSERT INTO evaluation_keys (tenant_id, evaluation_id, kid, wrapped)
    VALUES ({SCOPE_TENANT}, $2, $3, $4)
    ON CONFLICT (tenant_id, evaluation_id) DO NOTHING
    RETURNING kid, wrapped
)
SELECT kid, wrapped FROM added
UNION ALL
SELECT kid, wrapped FROM evaluation_keys
 WHERE tenant_id = $1 AND evaluation_id = $2 AND NOT EXISTS (SELECT 1 FROM added)
"""  # noqa: S608
DESTROY = "DELETE FROM evaluation_keys WHERE tenant_id = $1 AND evaluation_id = ANY($2::text[])"
PAGE = scoped(
    """
SELECT evaluation_id, kid, wrapped FROM evaluation_keys
 WHERE tenant_id = scope.tenant AND ($2::text IS NULL OR evaluation_id > $2)
 ORDER BY evaluation_id LIMIT $3""",
    order="q.evaluation_id",
)
REPLACE = """
UPDATE evaluation_keys SET kid = $5, wrapped = $6
 WHERE tenant_id = $1 AND evaluation_id = $2 AND kid = $3 AND wrapped = $4
"""
COUNT = scoped("SELECT count(*) FROM evaluation_keys WHERE tenant_id = scope.tenant")
# A conflicting add whose row this statement's snapshot cannot see yet: asked again.
ADD_ATTEMPTS = 3


class PgEvaluationKeys(EvaluationKeys):
    """``EvaluationKeys`` of one tenant on ``evaluation_keys``."""

    def __init__(
        self, pool: "asyncpg.Pool[asyncpg.Record]", tenant: TenantId = DEFAULT_TENANT
    ) -> None:
        self._pool = pool
        self._tenant = tenant

    def of(self, tenant: TenantId) -> "PgEvaluationKeys":
        return PgEvaluationKeys(self._pool, tenant)

    async def _fetch(self, sql: str, *arguments: Any) -> list[Any]:
        with translate_errors("evaluation key"):
            return await self._pool.fetch(sql, self._tenant, *arguments)

    async def _execute(self, sql: str, *arguments: Any) -> int:
        with translate_errors("evaluation key"):
            status = await in_transaction(self._pool, self._tenant, sql, self._tenant, *arguments)
        return rows_affected(status)

    async def fetch(self, evaluation_id: str) -> WrappedKey | None:
        rows = await self._fetch(FETCH, evaluation_id)
        return _key(rows[0]) if rows else None

    async def add(self, evaluation_id: str, key: WrappedKey) -> WrappedKey:
        for _ in range(ADD_ATTEMPTS):
            rows = await self._fetch(ADD, evaluation_id, key.kid, key.wrapped)
            if rows:
                return _key(rows[0])
        raise RuntimeError(f"the key of {evaluation_id!r} neither added nor found")

    async def destroy(self, evaluation_ids: Sequence[str]) -> int:
        if not evaluation_ids:
            return 0
        return await self._execute(DESTROY, list(evaluation_ids))

    async def page(self, after: str | None, limit: int) -> list[tuple[str, WrappedKey]]:
        rows = await self._fetch(PAGE, after, limit)
        return [(row["evaluation_id"], _key(row)) for row in rows]

    async def replace(self, evaluation_id: str, old: WrappedKey, new: WrappedKey) -> bool:
        changed = await self._execute(
            REPLACE, evaluation_id, old.kid, old.wrapped, new.kid, new.wrapped
        )
        return changed == 1

    async def count(self) -> int:
        rows = await self._fetch(COUNT)
        return int(rows[0][0])


def _key(row: Any) -> WrappedKey:
    return WrappedKey(row["kid"], bytes(row["wrapped"]))
