import secrets
from dataclasses import dataclass

from application.commands import NewEvaluation
from application.errors import DuplicateEvaluationError
from application.ports.clock import Clock
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.unit_of_work import UnitOfWork
from application.services.audit_trail import AuditTrail
from application.services.publisher import RecordPublisher
from domain.audit import AuditAction
from domain.evaluation import Evaluation, ensure_storable_json, ensure_storable_text
from domain.identifiers import generate_evaluation_id
from domain.limits import InputLimits
from domain.status import EvaluationStatus
from domain.tenancy import TenantId

_GENERATED_ID_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class CreateEvaluation:
    repository: EvaluationRepository
    uow: UnitOfWork
    clock: Clock
    publisher: RecordPublisher
    audit: AuditTrail
    limits: InputLimits
    tenant: TenantId

    async def execute(self, new: NewEvaluation, *, generated_id: bool = False) -> Evaluation:
        """Store a new record; a generated id is retried on the rare collision.

        ``generated_id`` says ``new.id`` was generated for the caller (failover needs
        it before the first attempt), so a collision picks another one too.
        """
        ensure_storable_text("code", new.code)
        ensure_storable_json("metadata", new.metadata)
        self.limits.check_json("metadata", new.metadata)
        for name in ("language", "celery_task_id", "executor_id", "container_id"):
            ensure_storable_json(name, getattr(new, name))
        attempts = 1 if new.id is not None and not generated_id else _GENERATED_ID_ATTEMPTS
        for attempt in range(attempts):
            now = self.clock.now()
            evaluation_id = (
                new.id
                if new.id is not None and attempt == 0
                else generate_evaluation_id(now, secrets.token_hex(3))
            )
            evaluation = Evaluation(
                id=evaluation_id,
                code=new.code,
                language=new.language,
                status=new.status,
                created_at=now,
                updated_at=now,
                started_at=now if new.status is EvaluationStatus.RUNNING else None,
                completed_at=now if new.status.is_terminal else None,
                metadata=new.metadata,
                celery_task_id=new.celery_task_id,
                executor_id=new.executor_id,
                container_id=new.container_id,
            )
            # A store may hold the insert until the commit (to send it with its audit
            # entry as one statement), so a taken id can surface at either point.
            try:
                await self.repository.add(evaluation)
                await self.audit.record(
                    AuditAction.CREATE,
                    evaluation.id,
                    fields=_given_fields(new, generated_id=generated_id),
                    sizes={"code": len(new.code.encode())},
                    status=evaluation.status,
                    version=evaluation.version,
                )
                await self.uow.commit()
            except DuplicateEvaluationError:
                await self.uow.rollback()
                if attempt + 1 == attempts:
                    raise
                continue
            await self.publisher.after_create(self.tenant, evaluation)
            return evaluation
        raise AssertionError("unreachable")  # pragma: no cover


def _given_fields(new: NewEvaluation, *, generated_id: bool) -> tuple[str, ...]:
    """The fields the caller set (a generated id and defaults are not the caller's)."""
    defaults = NewEvaluation(code="")
    return tuple(
        name
        for name in new.__struct_fields__
        if name == "code"
        or (getattr(new, name) != getattr(defaults, name) and not (name == "id" and generated_id))
    )
