"""Changing a stored record: the changes a request asks for, how they apply, and the
one way a stored record changes (``RecordWriter``), which every record write shares.

Concurrent writers of one evaluation never overwrite each other silently: the
store refuses a save whose version moved on, and the change is re-applied to
the fresh record. Several writers of one record are the platform's normal case
(its worker, Celery tasks and gateway), so a plain write waits its turn for as
long as a statement may run, never failing because another got there first. A
caller that pinned a version (``If-Match``) gets ``PreconditionFailedError``
instead of a retry. An attempt the database ended to break a deadlock with another
writer (``WriteConflictError``: nothing of it written) is tried again in the same way.
"""

import contextlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import anyio
import msgspec
from msgspec import UNSET

from application.commands import EvaluationChanges
from application.errors import (
    BackendUnavailableError,
    EvaluationNotFoundError,
    PreconditionFailedError,
    VersionConflictError,
    WriteConflictError,
    require_found,
)
from application.ports.clock import Clock
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.unit_of_work import UnitOfWork
from application.services.audit_trail import AuditTrail
from application.services.payloads import PayloadStore
from application.services.publisher import RecordPublisher
from domain.audit import AuditAction, changed_fields
from domain.evaluation import Evaluation, ensure_storable_json
from domain.identifiers import EvaluationId
from domain.limits import InputLimits
from domain.payload import PayloadKind, StoredPayload
from domain.status import StatusMove, judge_move
from domain.tenancy import TenantId
from domain.timestamps import as_utc

Mutation = Callable[[Evaluation], Awaitable[bool]]
# Between attempts after a conflict: up to 1, 2, 4 … ms (capped at 50), randomised so that
# writers racing on one record stop colliding in lockstep.
BACKOFF_BASE_S = 0.001
BACKOFF_CAP_S = 0.05


class ConflictBudget(msgspec.Struct, frozen=True):
    """How long a plain write keeps retrying after version conflicts (the statement timeout)."""

    seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class RecordWriter:
    repository: EvaluationRepository
    uow: UnitOfWork
    clock: Clock
    payloads: PayloadStore
    publisher: RecordPublisher
    audit: AuditTrail
    conflict_budget: ConflictBudget
    tenant: TenantId

    async def load(self, evaluation_id: EvaluationId) -> Evaluation:
        return require_found(await self.repository.get(evaluation_id), evaluation_id)

    async def change(
        self,
        evaluation_id: EvaluationId,
        mutate: Mutation,
        *,
        action: AuditAction,
        expected_version: int | None = None,
        keep: frozenset[str] = frozenset(),
    ) -> tuple[Evaluation, bool]:
        """Apply ``mutate`` (returns whether it changed anything) and commit.

        Returns the record as committed and whether a change was made; a change
        is audited as ``action`` in its own transaction. Blobs
        that ``mutate`` wrote for an attempt that did not reach the commit are
        deleted (except the caller's own ``keep``); an error in the commit itself
        leaves them, since the commit may have happened: at worst an orphan.
        """
        deadline = anyio.current_time() + self.conflict_budget.seconds
        attempt = 0
        ended: WriteConflictError | None = None  # the last attempt's, if the database ended it
        while True:
            before = await self.load(evaluation_id)
            if attempt and anyio.current_time() > deadline:
                raise ended or VersionConflictError(evaluation_id, expected=before.version)
            attempt += 1
            if expected_version is not None and before.version != expected_version:
                raise PreconditionFailedError(evaluation_id, expected_version, before.version)
            after = before.deep_copy()
            try:
                changed = await mutate(after)
                if changed:
                    after.touch(self.clock.now())
                    await self._stage(before, after, action)
            except (VersionConflictError, WriteConflictError) as error:
                ended = await self._overtaken(error, before, after, keep, expected_version, attempt)
                continue
            except BaseException as error:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await self.payloads.discard_unsaved(before, after, keep)
                    if isinstance(error, BackendUnavailableError):
                        await self.publisher.restore(self.tenant, before)
                raise
            if not changed:
                await self.payloads.discard_unsaved(before, after, keep)
                return before, False
            # A store may hold the update until the commit (to send it with its audit entry
            # as one statement) and find the version moved on, or the record gone, only
            # there; then nothing was written.
            try:
                await self.uow.commit()
            except (VersionConflictError, WriteConflictError) as error:
                ended = await self._overtaken(error, before, after, keep, expected_version, attempt)
                continue
            except EvaluationNotFoundError:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await self.uow.rollback()
                    await self.payloads.discard_unsaved(before, after, keep)
                raise
            except BackendUnavailableError:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await self.publisher.restore(self.tenant, before)
                raise
            await self.publisher.after_commit(self.tenant, after, before)
            await self.payloads.discard_replaced(self.tenant, before, after)
            return after, True

    async def _overtaken(
        self,
        error: VersionConflictError | WriteConflictError,
        before: Evaluation,
        after: Evaluation,
        keep: frozenset[str],
        expected_version: int | None,
        attempt: int,
    ) -> WriteConflictError | None:
        """Undo attempt ``attempt``, which wrote nothing, and wait before the next. Another
        writer overtook it (``If-Match`` is refused then), or the database ended it for a
        concurrent one (returned: the answer once the budget is spent; the next attempt
        checks ``If-Match`` again)."""
        await self.payloads.discard_unsaved(before, after, keep)
        await self.uow.rollback()
        if isinstance(error, VersionConflictError) and expected_version is not None:
            current = await self.load(before.id)
            raise PreconditionFailedError(before.id, expected_version, current.version) from None
        await anyio.sleep(_backoff(attempt - 1))
        return error if isinstance(error, WriteConflictError) else None

    async def _stage(self, before: Evaluation, after: Evaluation, action: AuditAction) -> None:
        """Everything up to the commit: snapshot, cache tombstone, compare-and-swap, audit."""
        await self.payloads.write_snapshot(self.tenant, after)
        await self.publisher.before_commit(self.tenant, after)
        await self.repository.update(after, expected_version=before.version)
        fields = changed_fields(before, after)
        sizes: dict[str, int] = {
            kind: payload.size
            for kind in ("output", "error")
            if kind in fields and (payload := getattr(after, kind)) is not None
        }
        await self.audit.record(
            action, after.id, fields=fields, sizes=sizes, status=after.status, version=after.version
        )


def _backoff(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1``: full jitter, exponential, capped."""
    ceiling: float = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0**attempt)
    return ceiling * secrets.randbelow(1001) / 1000


@dataclass(frozen=True, slots=True)
class ChangeApplier:
    """Applies :class:`EvaluationChanges` to a record, routing payloads on the way."""

    clock: Clock
    payloads: PayloadStore
    limits: InputLimits

    async def apply(
        self, tenant: TenantId, evaluation: Evaluation, changes: EvaluationChanges
    ) -> bool:
        """Mutate ``evaluation`` of ``tenant``; returns whether anything changed.

        A late status report (one the evaluation has already passed) changes
        nothing at all: the fields sent with it describe a state the record
        has left. Otherwise the status moves before any payload is written.
        """
        for name in ("metadata", *_PLAIN_FIELDS):
            ensure_storable_json(name, getattr(changes, name))
        if changes.metadata is not UNSET:
            self.limits.check_json("metadata", changes.metadata)
        override = changes.override is True
        late = (
            changes.status is not UNSET
            and judge_move(evaluation.status, changes.status) is StatusMove.LATE
        )
        if late and not override:
            return False
        before = msgspec.structs.asdict(evaluation)
        for name in _PLAIN_FIELDS:
            value = getattr(changes, name)
            if value is not UNSET:
                setattr(evaluation, name, as_utc(value) if isinstance(value, datetime) else value)
        if changes.metadata is not UNSET:
            evaluation.merge_metadata(changes.metadata)
        if changes.status is not UNSET:
            evaluation.change_status(changes.status, self.clock.now(), override=override)
        if changes.output is not UNSET:
            evaluation.output = await self._store(tenant, evaluation.id, "output", changes.output)
        if changes.error is not UNSET:
            evaluation.error = await self._store(tenant, evaluation.id, "error", changes.error)
        return msgspec.structs.asdict(evaluation) != before

    async def _store(
        self, tenant: TenantId, evaluation_id: EvaluationId, kind: PayloadKind, text: str | None
    ) -> StoredPayload | None:
        if text is None:
            return None
        return await self.payloads.store(tenant, evaluation_id, kind, text)


_PLAIN_FIELDS = (
    "runtime_ms",
    "started_at",
    "completed_at",
    "executor_id",
    "container_id",
    "celery_task_id",
    "retries",
    "exit_code",
    "timeout",
    "last_update",
    "retry_message",
    "final_failure",
)


@dataclass(frozen=True, slots=True)
class UpdateEvaluation:
    writer: RecordWriter
    applier: ChangeApplier

    async def execute(
        self,
        evaluation_id: EvaluationId,
        changes: EvaluationChanges,
        *,
        expected_version: int | None = None,
    ) -> Evaluation:
        async def mutate(evaluation: Evaluation) -> bool:
            return await self.applier.apply(self.writer.tenant, evaluation, changes)

        action = AuditAction.ADMIN_OVERRIDE if changes.override is True else AuditAction.UPDATE
        evaluation, _ = await self.writer.change(
            evaluation_id, mutate, action=action, expected_version=expected_version
        )
        return evaluation
