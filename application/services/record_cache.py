"""Cache-aside for evaluation records, safe against stale re-fills.

Each entry is versioned: a record at version ``v`` is cached as ``2v`` and the
tombstone laid just before committing version ``v`` is ``2v - 1``. The cache
keeps only strictly newer entries, so

* a reader that loaded version ``v - 1`` cannot re-fill it once a writer has
  started committing ``v`` (``2v - 2 < 2v - 1``);
* the writer's own entry for ``v`` replaces its tombstone (``2v > 2v - 1``);
* if the process dies between commit and publish, the tombstone only costs a
  miss until it expires: it never serves the old record.

One cache serves every tenant: each call names its tenant, and the key holds the
qualified id (ADR 0032), so the same id in two tenants names two entries.
"""

from dataclasses import dataclass

import msgspec

from application.ports.cache import Cache
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId, qualified_id

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Evaluation)


def record_key(tenant: TenantId, evaluation_id: EvaluationId) -> str:
    """``eval:{<qualified id>}``: the braces are a Redis Cluster hash tag for one
    evaluation's keys; the default tenant's is ``eval:{<id>}``, as before tenants."""
    return f"eval:{{{qualified_id(tenant, evaluation_id)}}}"


@dataclass(frozen=True, slots=True)
class RecordCache:
    cache: Cache | None

    async def get(self, tenant: TenantId, evaluation_id: EvaluationId) -> Evaluation | None:
        if self.cache is None:
            return None
        raw = await self.cache.get(record_key(tenant, evaluation_id))
        if raw is None:
            return None
        try:
            return _decoder.decode(raw)
        except msgspec.DecodeError:
            return None

    async def fill(self, tenant: TenantId, evaluation: Evaluation, *, warm: bool = False) -> None:
        """Cache a record just read from the store (refused if a newer one is there).

        ``warm``: a warm-up's fill, marked so that the hits it serves count as warming's.
        """
        if self.cache is not None:
            await self.cache.put_if_newer(
                record_key(tenant, evaluation.id),
                2 * evaluation.version,
                _encoder.encode(evaluation),
                warm=warm,
            )

    async def before_commit(
        self, tenant: TenantId, evaluation_id: EvaluationId, new_version: int
    ) -> None:
        """Block re-fills of older versions while ``new_version`` is being committed."""
        if self.cache is not None:
            key = record_key(tenant, evaluation_id)
            await self.cache.put_if_newer(key, 2 * new_version - 1, None)

    async def restore(self, tenant: TenantId, evaluation: Evaluation) -> None:
        """Put back ``evaluation`` after a commit of its next version failed for an outage.

        The tombstone would hide the record for the whole outage, when the failover
        journal needs it as the base of the writes it takes. If that commit did happen
        after all, the journal replays the write (skipping it) and re-publishes.
        """
        if self.cache is not None:
            await self.cache.delete(record_key(tenant, evaluation.id))
            await self.fill(tenant, evaluation)

    async def forget(self, tenant: TenantId, evaluation_id: EvaluationId) -> None:
        """Drop the entry of a record that no longer exists (purged)."""
        if self.cache is not None:
            await self.cache.delete(record_key(tenant, evaluation_id))

    async def clear(self) -> int:
        """Drop every cached record, of every tenant; the number of entries removed."""
        return 0 if self.cache is None else await self.cache.clear()

    async def after_commit(self, tenant: TenantId, evaluation: Evaluation) -> None:
        """Publish the committed record; a deleted one stays a tombstone."""
        if self.cache is None:
            return
        value = None if evaluation.deleted_at is not None else _encoder.encode(evaluation)
        key = record_key(tenant, evaluation.id)
        await self.cache.put_if_newer(key, 2 * evaluation.version, value)
