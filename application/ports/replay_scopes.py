from abc import abstractmethod
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from application.ports.audit_log import AuditLog
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.replay_marks import ReplayMarks
from application.ports.unit_of_work import UnitOfWork
from application.services.audit_trail import AuditContext
from application.services.intent_runner import IntentRunner
from application.services.record_cache import RecordCache


class ReplayUnit(Protocol):
    """What replaying one journal entry needs, sharing one transaction on the primary."""

    runner: IntentRunner
    repository: EvaluationRepository
    marks: ReplayMarks
    audit_log: AuditLog
    uow: UnitOfWork
    record_cache: RecordCache


class ReplayScopes(Protocol):
    @abstractmethod
    def open(self, context: AuditContext) -> AbstractAsyncContextManager[ReplayUnit]:
        """A fresh request scope on the primary whose writes are audited as ``context``."""
