"""The one way a stored record changes: load, mutate, compare-and-swap, publish.

Concurrent writers of one evaluation never overwrite each other silently: the
store refuses a save whose version moved on, and the change is re-applied to
the fresh record. A caller that pinned a version (``If-Match``) gets
``PreconditionFailedError`` instead of a retry.
"""

import copy
from collections.abc import Awaitable, Callable

from application.errors import (
    EvaluationNotFoundError,
    PreconditionFailedError,
    VersionConflictError,
)
from application.ports.clock import Clock
from application.ports.evaluation_repository import EvaluationRepository
from application.ports.unit_of_work import UnitOfWork
from application.services.payloads import PayloadStore
from application.services.publisher import RecordPublisher
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId

Mutation = Callable[[Evaluation], Awaitable[bool]]
MAX_ATTEMPTS = 8


class RecordWriter:
    def __init__(
        self,
        repository: EvaluationRepository,
        uow: UnitOfWork,
        clock: Clock,
        payloads: PayloadStore,
        publisher: RecordPublisher,
    ) -> None:
        self._repository = repository
        self._uow = uow
        self._clock = clock
        self._payloads = payloads
        self._publisher = publisher

    async def load(self, evaluation_id: EvaluationId) -> Evaluation:
        evaluation = await self._repository.get(evaluation_id)
        if evaluation is None:
            raise EvaluationNotFoundError(evaluation_id)
        return evaluation

    async def change(
        self,
        evaluation_id: EvaluationId,
        mutate: Mutation,
        *,
        expected_version: int | None = None,
    ) -> tuple[Evaluation, bool]:
        """Apply ``mutate`` (returns whether it changed anything) and commit.

        Returns the record as committed and whether a change was made.
        """
        for _ in range(MAX_ATTEMPTS):
            before = await self.load(evaluation_id)
            if expected_version is not None and before.version != expected_version:
                raise PreconditionFailedError(evaluation_id, expected_version, before.version)
            after = copy.deepcopy(before)
            if not await mutate(after):
                return before, False
            after.touch(self._clock.now())
            try:
                await self.save(before, after)
            except VersionConflictError:
                await self._uow.rollback()
                if expected_version is not None:
                    current = await self.load(evaluation_id)
                    raise PreconditionFailedError(
                        evaluation_id, expected_version, current.version
                    ) from None
                continue
            return after, True
        raise VersionConflictError(evaluation_id, expected=before.version)

    async def save(self, before: Evaluation, after: Evaluation) -> None:
        """Commit ``after`` over ``before``, then publish it and drop replaced blobs."""
        await self._payloads.write_snapshot(after)
        await self._publisher.before_commit(after)
        await self._repository.update(after, expected_version=before.version)
        await self._uow.commit()
        await self._publisher.after_commit(after)
        await self._payloads.discard_replaced(before, after)
