"""``Idempotency-Key`` answers in hand-written SQL on the asyncpg pool: one statement a call.

A keyed write pays a claim and an answer on top of its own work, so each is one round
trip in autocommit (the SQLAlchemy store takes four: ping, ``BEGIN``, statement,
``COMMIT``). The claim inserts the key, takes over an expired or abandoned one, or
returns the row that holds it, in one statement. Each statement sets its tenant ($1)
itself (``tenancy``) but the release, a ``DELETE``, which runs in a transaction of its own.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from application.ports.idempotency_store import IdempotencyStore, KeyRecord
from domain.tenancy import TenantId
from infrastructure.postgres.tenancy import SCOPE, SCOPE_TENANT, in_transaction, scoped
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.idempotency import key_record, key_values

# The claimed row, or else the row that holds the key (as the statement's snapshot saw it).
# $1 the tenant, $2 the caller, $3 the key in every statement.
CLAIM = f"""
WITH {SCOPE}, claimed AS (
    INSERT INTO idempotency_keys AS k (tenant_id, caller, key, expires_at, lease_until)
    VALUES ({SCOPE_TENANT}, $2, $3, $5, $4)
    ON CONFLICT (tenant_id, caller, key) DO UPDATE
       SET fingerprint = NULL, status = NULL, headers = NULL, body = NULL,
           expires_at = EXCLUDED.expires_at, lease_until = EXCLUDED.lease_until
     WHERE k.expires_at <= $6 OR (k.status IS NULL AND k.lease_until <= $6)
    RETURNING 1
)
SELECT true AS claimed, NULL::text AS fingerprint, NULL::integer AS status,
       NULL::jsonb AS headers, NULL::bytea AS body,
       NULL::timestamptz AS expires_at, NULL::timestamptz AS lease_until
  FROM claimed
UNION ALL
SELECT false, fingerprint, status, headers, body, expires_at, lease_until
  FROM idempotency_keys
 WHERE tenant_id = $1 AND caller = $2 AND key = $3 AND NOT EXISTS (SELECT 1 FROM claimed)
"""  # noqa: S608
FIND = scoped("""
SELECT fingerprint, status, headers, body, expires_at, lease_until
  FROM idempotency_keys
 WHERE tenant_id = scope.tenant AND caller = $2 AND key = $3
   AND expires_at > $4 AND (status IS NOT NULL OR lease_until > $4)""")
ANSWER = f"""
WITH {SCOPE}
INSERT INTO idempotency_keys
       (tenant_id, caller, key, fingerprint, status, headers, body, expires_at, lease_until)
VALUES ({SCOPE_TENANT}, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (tenant_id, caller, key) DO UPDATE
   SET fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status,
       headers = EXCLUDED.headers, body = EXCLUDED.body,
       expires_at = EXCLUDED.expires_at, lease_until = EXCLUDED.lease_until
"""  # noqa: S608
ANSWER_COLUMNS = ("fingerprint", "status", "headers", "body", "expires_at", "lease_until")
RELEASE = (
    "DELETE FROM idempotency_keys "
    "WHERE tenant_id = $1 AND caller = $2 AND key = $3 AND status IS NULL"
)
PURGE = """
DELETE FROM idempotency_keys
 WHERE ctid IN (
   SELECT ctid FROM idempotency_keys WHERE tenant_id = $3 AND expires_at <= $1 LIMIT $2
 )
"""
PURGE_BATCH = 1000
FORGET = """
DELETE FROM idempotency_keys
 WHERE tenant_id = $2 AND body IS NOT NULL
   AND EXISTS (SELECT 1 FROM unnest($1::bytea[]) AS n WHERE position(n IN body) > 0)
"""
# A row claimed or taken over by a transaction that committed after this statement's
# snapshot is neither claimed nor seen as it is now; the next statement sees it.
CLAIM_ATTEMPTS = 3


class PgIdempotencyStore(IdempotencyStore):
    """``IdempotencyStore`` on ``idempotency_keys``, each call one autocommitted statement."""

    def __init__(self, pool: "asyncpg.Pool[asyncpg.Record]") -> None:
        self._pool = pool

    async def _fetch(self, operation: str, sql: str, *arguments: Any) -> list[Any]:
        with translate_errors(operation):
            return await self._pool.fetch(sql, *arguments)

    async def claim(self, claim: KeyRecord, *, now: datetime) -> KeyRecord | None:
        tenant, caller, key = claim.tenant, claim.caller, claim.key
        arguments = (tenant, caller, key, claim.lease_until, claim.expires_at, now)
        for _ in range(CLAIM_ATTEMPTS):
            rows = await self._fetch("idempotency claim", CLAIM, *arguments)
            if rows and rows[0]["claimed"]:
                return None
            held = key_record(tenant, caller, key, rows[0]) if rows else None
            # The snapshot may show a row another claim has just taken over (or none yet):
            # only a live holder is an answer; otherwise the next statement sees more.
            if held is not None and not held.reclaimable(now):
                return held
        raise RuntimeError(f"idempotency key {key!r} neither claimed nor found")

    async def find(
        self, tenant: TenantId, caller: str, key: str, *, now: datetime
    ) -> KeyRecord | None:
        rows = await self._fetch("idempotency find", FIND, tenant, caller, key, now)
        return key_record(tenant, caller, key, rows[0]) if rows else None

    async def complete(self, answer: KeyRecord) -> None:
        values = key_values(answer)
        await self._fetch(
            "idempotency answer",
            ANSWER,
            answer.tenant,
            answer.caller,
            answer.key,
            *(values[name] for name in ANSWER_COLUMNS),
        )

    async def release(self, tenant: TenantId, caller: str, key: str) -> None:
        with translate_errors("idempotency release"):
            await in_transaction(self._pool, tenant, RELEASE, tenant, caller, key)

    async def purge(self, now: datetime, tenant: TenantId) -> int:
        purged = 0
        while True:
            with translate_errors("idempotency purge"):
                status = await in_transaction(self._pool, tenant, PURGE, now, PURGE_BATCH, tenant)
            deleted = int(status.rsplit(" ", 1)[-1])
            purged += deleted
            if deleted < PURGE_BATCH:
                return purged

    async def forget_answers_with(self, tenant: TenantId, needles: Sequence[bytes]) -> int:
        if not needles:
            return 0
        with translate_errors("idempotency forget"):
            status = await in_transaction(self._pool, tenant, FORGET, list(needles), tenant)
        return int(status.rsplit(" ", 1)[-1])
