from typing import Annotated

from dishka.integrations.litestar import FromDishka
from litestar import Controller, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from application.services.failover import FailoverReads, FailoverWrites
from application.use_cases.events import ListEvents, NewEvent
from application.use_cases.logs import ReadLog
from interfaces.http.errors import ACCEPTED_RESPONSE, problem_responses
from interfaces.http.params import EvalIdPath, evaluation_id
from interfaces.http.schemas import (
    AddEventBody,
    AppendLogBody,
    EventBody,
    LogAppended,
    LogBody,
)


class TimelineController(Controller):
    path = "/evaluations/{eval_id:str}"
    tags = ["Logs and events"]

    @post(
        "/logs",
        status_code=HTTP_201_CREATED,
        summary="Append a chunk to the log",
        responses=problem_responses(400, 404, 413, 422, 503) | ACCEPTED_RESPONSE,
    )
    async def append_log(
        self, eval_id: EvalIdPath, data: AppendLogBody, writes: FromDishka[FailoverWrites]
    ) -> LogAppended:
        chunk = await writes.append_log(evaluation_id(eval_id), data.content)
        return LogAppended(
            evaluation_id=chunk.evaluation_id,
            offset=chunk.offset,
            size=chunk.size,
            next_offset=chunk.end,
        )

    @get(
        "/logs",
        summary="Read the log, whole or from a byte offset",
        responses=problem_responses(400, 404, 422, 503),
    )
    async def read_log(
        self,
        eval_id: EvalIdPath,
        use_case: FromDishka[ReadLog],
        reads: FromDishka[FailoverReads],
        offset: Annotated[int, Parameter(ge=0, le=2**63 - 1, description="bytes already seen")] = 0,
    ) -> LogBody:
        identifier = evaluation_id(eval_id)
        journaled = await reads.log(identifier, offset)
        piece = journaled if journaled is not None else await use_case.execute(identifier, offset)
        return LogBody(
            evaluation_id=identifier,
            content=piece.content,
            offset=piece.offset,
            next_offset=piece.next_offset,
        )

    @post(
        "/events",
        status_code=HTTP_200_OK,
        summary="Add an event to the timeline",
        description="Answers the event as stored; a repeated `event_id` is stored once and "
        "answered with the first copy.",
        responses=problem_responses(400, 404, 413, 422, 503) | ACCEPTED_RESPONSE,
    )
    async def add_event(
        self, eval_id: EvalIdPath, data: AddEventBody, writes: FromDishka[FailoverWrites]
    ) -> EventBody:
        new = NewEvent(
            event_type=data.kind(),
            message=data.message,
            metadata=data.metadata,
            timestamp=data.timestamp,
            event_id=data.event_id,
        )
        return EventBody.of(await writes.record_event(evaluation_id(eval_id), new))

    @get(
        "/events",
        summary="The event timeline, oldest first",
        responses=problem_responses(400, 404, 422, 503),
    )
    async def list_events(
        self,
        eval_id: EvalIdPath,
        use_case: FromDishka[ListEvents],
        reads: FromDishka[FailoverReads],
    ) -> list[EventBody]:
        identifier = evaluation_id(eval_id)
        journaled = await reads.events(identifier)
        events = journaled if journaled is not None else await use_case.execute(identifier)
        return [EventBody.of(e) for e in events]
