"""Reads of one record that see its journaled writes while they wait for replay."""

from dataclasses import dataclass

from application.errors import InvalidRequestError, require_found
from application.failover.cached_reads import cache_missed
from application.failover.views import JournalView, JournalViews
from application.ports.journal import Journal
from application.ports.use_case_locator import UseCaseLocator
from application.queries import Projection, check_projection, project
from application.services.record_cache import RecordCache
from application.use_cases.events import ListEvents
from application.use_cases.get_evaluation import GetEvaluationFields, LoadEvaluation
from application.use_cases.logs import EvaluationLogs, GetEvaluationLogs, LogSource
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.tenancy import TenantId
from domain.timeline import EvaluationEvent


@dataclass(frozen=True, slots=True)
class RecordReads:
    """A record, its log and its events: from the journal's view when writes of the record
    wait there, else from the usual read."""

    journal: Journal
    locate: UseCaseLocator
    record_cache: RecordCache
    tenant: TenantId

    async def get(self, evaluation_id: EvaluationId) -> Evaluation:
        found = await self._journaled(evaluation_id)
        if found is not None:
            return found
        # A hit needs nothing of the request's store: only a miss has the loader built.
        if not cache_missed(self.tenant, evaluation_id):
            cached = await self.record_cache.get(self.tenant, evaluation_id)
            if cached is not None:
                return cached
        return await (await self.locate.get(LoadEvaluation)).execute(evaluation_id)

    async def get_fields(self, evaluation_id: EvaluationId, fields: frozenset[str]) -> Projection:
        found = await self._journaled(evaluation_id)
        if found is None:
            get_fields = await self.locate.get(GetEvaluationFields)
            return await get_fields.execute(evaluation_id, fields)
        try:
            wanted = check_projection(fields)
        except ValueError as exc:
            raise InvalidRequestError("fields", str(exc)) from None
        return project(found, wanted)

    async def logs(self, evaluation_id: EvaluationId, offset: int) -> EvaluationLogs:
        view = await self._view(evaluation_id)
        if view is None or not view.complete:
            return await (await self.locate.get(GetEvaluationLogs)).execute(evaluation_id, offset)
        found = require_found(await view.store.get(evaluation_id), evaluation_id)
        log = await view.store.log(evaluation_id, offset)
        return EvaluationLogs(evaluation=found, log=log, text=log.content, source=LogSource.JOURNAL)

    async def events(self, evaluation_id: EvaluationId) -> list[EvaluationEvent]:
        view = await self._view(evaluation_id)
        if view is None or not view.complete:
            return await (await self.locate.get(ListEvents)).execute(evaluation_id)
        return await view.store.events(evaluation_id)

    async def _journaled(self, evaluation_id: EvaluationId) -> Evaluation | None:
        """The record with its journaled writes, or None when the journal does not know it
        (then the usual read answers); 404 when a journaled delete removed it."""
        view = await self._view(evaluation_id)
        if view is None or not view.known:
            return None
        return require_found(await view.store.get(evaluation_id), evaluation_id)

    async def _view(self, evaluation_id: EvaluationId) -> JournalView | None:
        pending = await self.journal.pending_for(self.tenant, evaluation_id)
        if not pending:
            return None
        return await (await self.locate.get(JournalViews)).open(evaluation_id, pending)
