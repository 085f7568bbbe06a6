"""Seeding and reading records for the EvaluationQueries tests."""

from collections.abc import Sequence

from application.queries import EvaluationQuery
from domain.evaluation import Evaluation
from domain.identifiers import EvaluationId
from domain.timeline import EvaluationEvent
from tests.contract.conftest import BASE_TIME, PortStore


async def add(store: PortStore, *records: Evaluation) -> None:
    async with store.session() as ports:
        for record in records:
            await ports.repository.add(record)


async def list_ids(store: PortStore, query: EvaluationQuery) -> tuple[list[str], object, object]:
    """The ids of one page, its next cursor and its total."""
    async with store.session() as ports:
        page = await ports.pages.list(query)
    return [e.id for e in page.items], page.next_cursor, page.total


async def delete(store: PortStore, evaluation_id: str) -> None:
    """Soft-deletes the record at ``BASE_TIME``."""
    async with store.session() as ports:
        record = await ports.repository.get(EvaluationId(evaluation_id))
        assert record is not None
        version = record.version
        record.deleted_at = BASE_TIME
        record.touch(BASE_TIME)
        await ports.repository.update(record, version)


async def append_timeline(
    store: PortStore,
    evaluation_id: str,
    *,
    events: Sequence[str] = (),
    event_type: str = "status",
    logs: Sequence[str] = (),
) -> None:
    """Appends events (by event id, at ``BASE_TIME``) and then log chunks to one record."""
    async with store.session() as ports:
        for event_id in events:
            await ports.events.append(
                EvaluationEvent(
                    evaluation_id=EvaluationId(evaluation_id),
                    event_id=event_id,
                    event_type=event_type,
                    timestamp=BASE_TIME,
                )
            )
        for text in logs:
            await ports.logs.append(
                EvaluationId(evaluation_id), text, BASE_TIME, last_update=BASE_TIME
            )
