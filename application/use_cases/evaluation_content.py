from collections.abc import AsyncIterator

import msgspec

from application.errors import EvaluationNotFoundError
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.event_log import EventLog
from application.ports.log_store import LogStore
from application.services.payloads import PayloadStore
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.payload import PayloadKind, StoredPayload
from domain.timeline import EvaluationEvent


class CompleteEvaluation(msgspec.Struct, kw_only=True, frozen=True):
    evaluation: Evaluation
    output: str | None
    error: str | None
    logs: str
    events: list[EvaluationEvent]


class GetCompleteEvaluation:
    """The record with its full output and error, logs and events: every artifact."""

    def __init__(
        self,
        repository: EvaluationRepository,
        payloads: PayloadStore,
        logs: LogStore,
        events: EventLog,
    ) -> None:
        self._repository = repository
        self._payloads = payloads
        self._logs = logs
        self._events = events

    async def execute(self, evaluation_id: EvaluationId) -> CompleteEvaluation:
        evaluation = await self._repository.get(evaluation_id)
        if evaluation is None:
            raise EvaluationNotFoundError(evaluation_id)
        return CompleteEvaluation(
            evaluation=evaluation,
            output=await self._payloads.read_text(evaluation.output),
            error=await self._payloads.read_text(evaluation.error),
            logs=(await self._logs.read(evaluation_id)).content,
            events=await self._events.list(evaluation_id),
        )


class PayloadContent(msgspec.Struct, frozen=True):
    payload: StoredPayload | None
    chunks: AsyncIterator[bytes] | None


class ReadPayload:
    """Stream one full output or error from wherever it lives."""

    def __init__(self, repository: EvaluationRepository, payloads: PayloadStore) -> None:
        self._repository = repository
        self._payloads = payloads

    async def execute(self, evaluation_id: EvaluationId, kind: PayloadKind) -> PayloadContent:
        evaluation = await self._repository.get(evaluation_id)
        if evaluation is None:
            raise EvaluationNotFoundError(evaluation_id)
        payload = evaluation.output if kind == "output" else evaluation.error
        if payload is None:
            return PayloadContent(None, None)
        return PayloadContent(payload, self._payloads.stream(payload))
