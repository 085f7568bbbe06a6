from application.errors import EvaluationNotFoundError, InvalidRequestError
from application.ports.clock import Clock
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.log_store import LogStore
from application.ports.unit_of_work import UnitOfWork
from domain.evaluation import ensure_storable_text
from domain.identifiers import EvaluationId
from domain.timeline import LogChunk, LogSlice


class AppendLog:
    def __init__(
        self,
        repository: EvaluationRepository,
        logs: LogStore,
        uow: UnitOfWork,
        clock: Clock,
        max_chunk_bytes: int,
    ) -> None:
        self._repository = repository
        self._logs = logs
        self._uow = uow
        self._clock = clock
        self._max_chunk_bytes = max_chunk_bytes

    async def execute(self, evaluation_id: EvaluationId, content: str) -> LogChunk:
        ensure_storable_text("content", content)
        if len(content.encode("utf-8")) > self._max_chunk_bytes:
            raise InvalidRequestError(
                "content", f"a log chunk may hold at most {self._max_chunk_bytes} bytes"
            )
        if await self._repository.get(evaluation_id) is None:
            raise EvaluationNotFoundError(evaluation_id)
        chunk = await self._logs.append(evaluation_id, content, self._clock.now())
        await self._uow.commit()
        return chunk


class ReadLog:
    def __init__(self, repository: EvaluationRepository, logs: LogStore) -> None:
        self._repository = repository
        self._logs = logs

    async def execute(self, evaluation_id: EvaluationId, offset: int = 0) -> LogSlice:
        if offset < 0:
            raise InvalidRequestError("offset", "must not be negative")
        if await self._repository.get(evaluation_id) is None:
            raise EvaluationNotFoundError(evaluation_id)
        return await self._logs.read(evaluation_id, offset)
