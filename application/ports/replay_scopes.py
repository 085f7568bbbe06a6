from abc import abstractmethod
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from application.intents import Target, WriteIntent
from application.ports.audit_log import AuditLog
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.record_mirror import RecordMirror
from application.ports.replay_marks import ReplayMarks
from application.ports.unit_of_work import UnitOfWork
from domain.audit import AuditContext
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId

R = TypeVar("R")


class WriteRunner(Protocol):
    @abstractmethod
    async def run(self, intent: WriteIntent[R], target: Target) -> R:
        """Run ``intent``'s use case on the primary, within the unit's transaction."""


class CachedRecords(Protocol):
    """The record cache, as the replay republishes what it applied."""

    @abstractmethod
    async def fill(self, tenant: TenantId, evaluation: Evaluation) -> None: ...

    @abstractmethod
    async def forget(self, tenant: TenantId, evaluation_id: EvaluationId) -> None: ...


class ReplayUnit(Protocol):
    """What replaying one journal entry needs, sharing one transaction on the primary."""

    @property
    def handlers(self) -> WriteRunner: ...
    @property
    def repository(self) -> EvaluationRepository: ...
    @property
    def marks(self) -> ReplayMarks: ...
    @property
    def audit_log(self) -> AuditLog: ...
    @property
    def uow(self) -> UnitOfWork: ...
    @property
    def record_cache(self) -> CachedRecords: ...
    @property
    def mirror(self) -> RecordMirror: ...


class ReplayScopes(Protocol):
    @abstractmethod
    def open(self, context: AuditContext) -> AbstractAsyncContextManager[ReplayUnit]:
        """A fresh request scope on the primary whose writes are audited as ``context``."""
