"""``Idempotency-Key`` answers in SQL, each claim and answer a short transaction of its own.

Not the request's session: a claim must be visible to a concurrent request with the
same key at once, and must stay even when the request's own transaction rolls back.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from application.ports.idempotency_store import IdempotencyStore, KeyRecord, StoredResponse
from domain.tenancy import TenantId
from infrastructure.sql.dialect import dialect_name, insert_for
from infrastructure.sql.errors import translate_errors
from infrastructure.sql.rows import Row
from infrastructure.sql.tables import idempotency_keys
from infrastructure.sql.tenancy import bind_tenant

PURGE_BATCH = 1000
CLAIM_ATTEMPTS = 3
_c = idempotency_keys.c


def _key(tenant: TenantId, caller: str, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(_c.tenant_id == tenant, _c.caller == caller, _c.key == key)


def _reclaimable(now: datetime) -> sa.ColumnElement[bool]:
    """Expired, or in flight past its lease: the key is free again."""
    return sa.or_(_c.expires_at <= now, sa.and_(_c.status.is_(None), _c.lease_until <= now))


def _finds(dialect: str, needle: bytes) -> sa.ColumnElement[bool]:
    """Whether the stored body holds ``needle``: ``instr`` finds bytes in bytes on SQLite,
    ``position(... IN ...)`` on PostgreSQL."""
    value = sa.literal(needle, sa.LargeBinary())
    if dialect == "postgresql":
        return sa.func.position(value.op("IN")(_c.body)) > 0
    return sa.func.instr(_c.body, value) > 0


def key_record(tenant: TenantId, caller: str, key: str, row: Row) -> KeyRecord:
    """A row of ``idempotency_keys`` (both SQL stacks read the same columns)."""
    response = None
    if row["status"] is not None:
        headers: list[list[str]] = row["headers"] or []
        response = StoredResponse(
            status=row["status"],
            headers=tuple((name, value) for name, value in headers),
            body=bytes(row["body"] or b""),
        )
    return KeyRecord(
        tenant=tenant,
        caller=caller,
        key=key,
        fingerprint=row["fingerprint"],
        response=response,
        expires_at=row["expires_at"],
        lease_until=row["lease_until"],
    )


def key_values(record: KeyRecord) -> dict[str, Any]:
    """The columns of ``record`` but its (tenant, caller, key)."""
    response = record.response
    return {
        "fingerprint": record.fingerprint,
        "status": response.status if response else None,
        "headers": [list(pair) for pair in response.headers] if response else None,
        "body": response.body if response else None,
        "expires_at": record.expires_at,
        "lease_until": record.lease_until,
    }


class SqlIdempotencyStore(IdempotencyStore):
    """``IdempotencyStore`` on the ``idempotency_keys`` table (SQLite or PostgreSQL)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def claim(self, claim: KeyRecord, *, now: datetime) -> KeyRecord | None:
        for _ in range(CLAIM_ATTEMPTS):
            claimed, held = await self._claim_once(claim, now)
            if claimed or held is not None:
                return held
        raise RuntimeError(f"idempotency key {claim.key!r} neither claimed nor found")

    async def _claim_once(self, claim: KeyRecord, now: datetime) -> tuple[bool, KeyRecord | None]:
        """(True, None) when claimed; (False, the live holder); (False, None) when the row
        went between the statements (released or purged meanwhile): try again."""
        tenant, caller, key, fresh = claim.tenant, claim.caller, claim.key, key_values(claim)
        async with bind_tenant(self._sessions(), tenant) as session, session.begin():
            with translate_errors("idempotency claim"):
                inserted = await session.execute(
                    insert_for(session, idempotency_keys)
                    .values(tenant_id=tenant, caller=caller, key=key, **fresh)
                    .on_conflict_do_nothing(index_elements=[_c.tenant_id, _c.caller, _c.key])
                    .returning(_c.key)
                )
                if inserted.first() is not None:
                    return True, None
                # Taken over only while still free: of two requests one wins the row.
                taken = await session.execute(
                    sa.update(idempotency_keys)
                    .where(_key(tenant, caller, key), _reclaimable(now))
                    .values(**fresh)
                    .returning(_c.key)
                )
                if taken.first() is not None:
                    return True, None
                statement = sa.select(idempotency_keys).where(_key(tenant, caller, key))
                row = (await session.execute(statement)).mappings().first()
        return False, key_record(tenant, caller, key, row) if row is not None else None

    async def find(
        self, tenant: TenantId, caller: str, key: str, *, now: datetime
    ) -> KeyRecord | None:
        statement = sa.select(idempotency_keys).where(
            _key(tenant, caller, key), sa.not_(_reclaimable(now))
        )
        async with bind_tenant(self._sessions(), tenant) as session:
            with translate_errors("idempotency find"):
                row = (await session.execute(statement)).mappings().first()
        return key_record(tenant, caller, key, row) if row is not None else None

    async def complete(self, answer: KeyRecord) -> None:
        values = key_values(answer)
        async with bind_tenant(self._sessions(), answer.tenant) as session, session.begin():
            with translate_errors("idempotency answer"):
                await session.execute(
                    insert_for(session, idempotency_keys)
                    .values(tenant_id=answer.tenant, caller=answer.caller, key=answer.key, **values)
                    .on_conflict_do_update(
                        index_elements=[_c.tenant_id, _c.caller, _c.key], set_=values
                    )
                )

    async def release(self, tenant: TenantId, caller: str, key: str) -> None:
        async with bind_tenant(self._sessions(), tenant) as session, session.begin():
            with translate_errors("idempotency release"):
                await session.execute(
                    sa.delete(idempotency_keys).where(
                        _key(tenant, caller, key), _c.status.is_(None)
                    )
                )

    async def purge(self, now: datetime, tenant: TenantId) -> int:
        purged = 0
        while True:
            batch = (
                sa.select(_c.caller, _c.key)
                .where(_c.tenant_id == tenant, _c.expires_at <= now)
                .limit(PURGE_BATCH)
                .subquery()
            )
            async with bind_tenant(self._sessions(), tenant) as session, session.begin():
                with translate_errors("idempotency purge"):
                    result = await session.execute(
                        sa.delete(idempotency_keys).where(
                            _c.tenant_id == tenant,
                            sa.tuple_(_c.caller, _c.key).in_(
                                sa.select(batch.c.caller, batch.c.key)
                            ),
                        )
                    )
            deleted = int(getattr(result, "rowcount", 0) or 0)
            purged += deleted
            if deleted < PURGE_BATCH:
                return purged

    async def forget_answers_with(self, tenant: TenantId, needles: Sequence[bytes]) -> int:
        if not needles:
            return 0
        async with bind_tenant(self._sessions(), tenant) as session, session.begin():
            found = [_finds(dialect_name(session), needle) for needle in needles]
            with translate_errors("idempotency forget"):
                result = await session.execute(
                    sa.delete(idempotency_keys).where(
                        _c.tenant_id == tenant, _c.body.is_not(None), sa.or_(*found)
                    )
                )
        return int(getattr(result, "rowcount", 0) or 0)
