"""What every committed change of a record is followed by: mirror, cache, running registry,
log tail. Each is shared by every tenant, so each call names the record's tenant."""

from dataclasses import dataclass

from application.ports.log_tail import LogTail
from application.ports.record_mirror import RecordMirror
from application.ports.running_registry import RunningRegistry
from application.queries import RunningInfo
from application.services.record_cache import RecordCache
from domain.evaluation import Evaluation
from domain.tenancy import TenantId


@dataclass(frozen=True, slots=True)
class RecordPublisher:
    record_cache: RecordCache
    running: RunningRegistry
    tail: LogTail
    mirror: RecordMirror

    async def before_commit(self, tenant: TenantId, evaluation: Evaluation) -> None:
        await self.record_cache.before_commit(tenant, evaluation.id, evaluation.version)

    async def restore(self, tenant: TenantId, evaluation: Evaluation) -> None:
        """The commit after ``before_commit`` failed: the cache shows ``evaluation`` again."""
        await self.record_cache.restore(tenant, evaluation)

    async def after_create(self, tenant: TenantId, evaluation: Evaluation) -> None:
        """A new record: nothing older can be cached, tracked or tailed (no tombstone, no
        untrack), so a create costs one cache write, two when it starts running."""
        await self.mirror.record(tenant, evaluation)
        await self.record_cache.after_commit(tenant, evaluation)
        if evaluation.status.is_active:
            await self.running.track(tenant, RunningInfo.of(evaluation))

    async def after_commit(
        self, tenant: TenantId, evaluation: Evaluation, before: Evaluation | None = None
    ) -> None:
        """``before``: the committed version this one replaced; when it was not running
        either, there is nothing to untrack."""
        await self.mirror.record(tenant, evaluation)
        await self.record_cache.after_commit(tenant, evaluation)
        if evaluation.status.is_active and evaluation.deleted_at is None:
            await self.running.track(tenant, RunningInfo.of(evaluation))
        elif before is None or (before.status.is_active and before.deleted_at is None):
            await self.running.untrack(tenant, evaluation.id)
        if evaluation.status.is_terminal or evaluation.deleted_at is not None:
            # The tail serves running evaluations only; a retry keeps it (still a suffix).
            await self.tail.drop(tenant, evaluation.id)
